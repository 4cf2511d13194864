"""check-config and run on good and bad files: exit codes and messages, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import REPO, cli

BAD = """
instance: {name: t, state_dir: /tmp/x}
providers:
  lab: {type: builtin, listen: "127.0.0.1:5353"}
services:
  shop:
    records: [{provider: lab, zone: example.test, name: shop.example.test, type: A}]
    targets:
      - name: primary
        values: [127.0.0.1]
        probes: [{type: http, url: "http://127.0.0.1/", interval: 1s, timeout: 5s}]
"""


def test_example_configs_pass_check_config() -> None:
    lab = cli("check-config", "-c", str(REPO / "config" / "lab.yaml"))
    assert lab.returncode == 0, lab.stderr
    assert "OK" in lab.stdout
    full = REPO / "config" / "failover.example.yaml"
    strict = cli("check-config", "-c", str(full))
    assert strict.returncode == 2
    assert "OVH_APPLICATION_KEY is not set" in strict.stderr
    offline = cli("check-config", "-c", str(full), "--without-secrets")
    assert offline.returncode == 0, offline.stderr
    assert "secrets not available here" in offline.stdout
    assert "providers.bind.tsig.secret: ${TSIG_SECRET}" in offline.stdout
    assert "cloudflare: cloudflare (built-in) in cloudflare, api_token ***, " in offline.stdout
    assert "hetzner: hetzner (built-in) in hetzner, token ***, " in offline.stdout
    assert "batch_size 200" in offline.stdout


def test_bad_config_exits_2_with_the_key_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    for verb in ("check-config", "run"):
        result = cli(verb, "-c", str(path))
        assert result.returncode == 2, result.stderr
        assert "services.shop.targets[0].probes[0].timeout" in result.stderr
        assert "Traceback" not in result.stderr


def test_unknown_key_and_unknown_provider_type_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        BAD.replace("timeout: 5s", "timeout: 500ms")
        .replace("type: builtin", "type: route54")
        .replace("instance: {", "instance: {colour: blue, ")
    )
    result = cli("check-config", "-c", str(path))
    assert result.returncode == 2
    assert "instance.colour" in result.stderr
    assert "route54" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = cli("check-config", "-c", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "nope.yaml" in result.stderr
    assert "Traceback" not in result.stderr


SHARED = """
instance: {name: t, state_dir: STATE}
providers:
  lab: {type: builtin, listen: "127.0.0.1:5353"}
services:
  shop:
    records: [{provider: lab, zone: example.test, name: shop.example.test, type: A}]
    targets:
      - name: lb
        values: [127.0.0.1]
        probes: [{type: http, url: "http://127.0.0.1/health", host: ingress.test}]
  blog:
    records: [{provider: lab, zone: example.test, name: blog.example.test, type: A}]
    targets:
      - name: lb
        values: [127.0.0.1]
        probes:
          - {type: http, url: "http://127.0.0.1/health", host: ingress.test, name: same}
          - {type: http, url: "http://127.0.0.1/health", host: blog.test}
"""


def test_check_config_counts_distinct_probes(tmp_path: Path) -> None:
    path = tmp_path / "shared.yaml"
    path.write_text(SHARED.replace("STATE", str(tmp_path / "state")))
    result = cli("check-config", "-c", str(path))
    assert result.returncode == 0, result.stderr
    # the two `ingress.test` probes are one; another Host header is another probe
    assert (
        "probes: 3 configured, 2 distinct run (1 identical to another: each runs once per"
        " interval)" in result.stdout
    )
    # 2 distinct probes: far below what moves them to a child process
    assert re.search(
        r"^probes run \d+\.\d times a second, in the loop \(instance.probe_process: auto\)$",
        result.stdout,
        re.M,
    ), result.stdout
