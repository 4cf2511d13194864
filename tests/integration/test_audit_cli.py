"""`failover audit` from the command line: exit codes, the three formats, the shipped example
(audited without its secrets, as the README shows), and a running daemon whose journal, live
health and builtin DNS server the audit reads."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from failover.journal import Journal
from failover.model import Trigger
from failover.store import Store
from tests.support import REPO, DaemonProcess, TargetServer, cli, free_port, wait_until

EXAMPLE = REPO / "config" / "failover.example.yaml"
SECRETS = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", EXAMPLE.read_text()))

SOUND = """
instance: {{name: audit-1, location: onprem, state_dir: "{dir}/state"}}
admin: {{socket: "{dir}/admin.sock"}}
providers:
  r53: {{type: route53}}
  ovh: {{type: ovh{ovh_extra}}}
services:
  shop:
    rto: 5m
    records:
      - {{provider: r53, zone: example.com, name: shop.example.com, type: A, ttl: 60}}
      {second_record}
    targets:
      - name: primary
        location: aws
        values: [192.0.2.1]
        probes: [{{type: tcp, address: "192.0.2.1:443"}}]
      - name: backup
        location: ovh
        values: [192.0.2.2]
        probes: [{{type: tcp, address: "192.0.2.2:443"}}]
"""
OVH_RECORD = "- {provider: ovh, zone: example.com, name: shop.example.com, type: A, ttl: 60}"


def write(tmp_path: Path, *, second_record: str = OVH_RECORD, ovh_extra: str = "") -> Path:
    path = tmp_path / "failover.yaml"
    text = SOUND.format(dir=tmp_path, second_record=second_record, ovh_extra=ovh_extra)
    path.write_text(text)
    return path


def audit(*args: str, env: dict[str, str] | None = None) -> Any:
    return cli("audit", *args, env=env)


def test_exit_codes_and_formats(tmp_path: Path) -> None:
    nowhere = str(tmp_path / "no-daemon.sock")
    sound = write(tmp_path)
    text = audit("-c", str(sound), "--no-dns", "--socket", nowhere)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(f"failover audit of {sound}: 0 critical, 1 warning, 1 info\n")
    assert "WARNING  coordination: a single vantage point decides" in text.stdout
    assert "INFO     daemon: drills and live health unknown: daemon not reachable" in text.stdout
    assert f"  daemon: not reachable at unix socket {nowhere}; dns: not queried\n" in text.stdout

    keys = ', application_key: "${OVH_AK}", application_secret: s3cr3t-v4lue, '
    keys += 'consumer_key: "${OVH_CK}"'
    critical = write(tmp_path, second_record="", ovh_extra=keys)
    body = audit("-c", str(critical), "--no-dns", "--socket", nowhere, "--format", "json")
    assert body.returncode == 1, body.stderr
    report = json.loads(body.stdout)
    assert set(report) == {"findings", "summary"}
    assert report["summary"]["critical"] == 1 and report["summary"]["config"] == str(critical)
    assert report["summary"]["dns"] == "not queried"
    first = report["findings"][0]
    assert (first["severity"], first["check"], first["subject"]) == (
        "critical",
        "dns-provider-in-primary-location",
        "services.shop.records[0]",
    )
    checks = {(f["check"], f["subject"]) for f in report["findings"]}
    assert ("secret-in-clear", "providers.ovh.application_secret") in checks

    markdown = audit("-c", str(critical), "--no-dns", "--socket", nowhere, "--format", "markdown")
    assert markdown.returncode == 1
    assert markdown.stdout.startswith("# Resilience audit: audit-1\n")
    assert re.search(r"^- Date: \d{4}-\d\d-\d\d \d\d:\d\d UTC$", markdown.stdout, re.M)
    assert "| critical | 1 |\n| warning | 2 |\n| info | 1 |" in markdown.stdout
    assert "### 1. CRITICAL: shop.example.com A can only be changed through aws" in markdown.stdout
    for out in (text, body, markdown):
        assert "s3cr3t" not in out.stdout + out.stderr


def test_bad_input_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(write(tmp_path).read_text().replace("rto: 5m", "rto: 300"))
    result = audit("-c", str(bad), "--no-dns")
    assert result.returncode == 2
    assert "services.shop.rto: got the bare number 300" in result.stderr
    for args in (["--resolver", "ns.example.com"], ["--format", "pdf"], ["--dns-timeout", "5"]):
        result = audit("-c", str(write(tmp_path)), *args)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr
    assert "not IP[:PORT]" in audit("-c", str(bad), "--resolver", "x").stderr


def headlines(text: str) -> list[str]:
    """The summary line and each finding's severity/subject/title line."""
    return [
        line
        for line in text.splitlines()
        if line.startswith(("failover audit of", "CRITICAL ", "WARNING ", "INFO "))
    ]


def test_the_example_config_as_the_readme_shows_it() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "failover",
            "audit",
            "-c",
            "config/failover.example.yaml",
            "--no-dns",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k not in SECRETS},  # audited without them
    )
    assert result.returncode == 1, result.stderr
    assert (
        "CRITICAL services.api.records[2]: api.example.com A can only be changed" in result.stdout
    )
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```text\n(\$ failover audit .*?)```", readme, re.S)
    assert block is not None, "README: the Resilience audit section shows the audit's output"
    assert headlines(block.group(1)) == headlines(result.stdout)


# --- against a running daemon ------------------------------------------------------------------

DAEMON = """
instance: {{name: audit-lab, location: lab, state_dir: "{dir}/state"}}
admin: {{socket: "{dir}/admin.sock"}}
metrics: {{listen: "127.0.0.1:{metrics}"}}
providers:
  lab: {{type: builtin, listen: "127.0.0.1:{dns}", location: lab, verify: false}}
defaults:
  probe: {{interval: 200ms, timeout: 150ms}}
  health: {{fall: 2, rise: 2}}
  policy: {{startup_grace: 3s}}
services:
  shop:
    rto: 5m
    records: [{{provider: lab, zone: example.test, name: shop.example.test, type: A, ttl: 30}}]
    targets:
      - name: primary
        location: cloud-a
        values: [{a.host}]
        probes: [{{type: http, url: "{a.url}"}}]
      - name: secondary
        location: cloud-b
        values: [{b.host}]
        probes: [{{type: http, url: "{b.url}"}}]
      - name: tertiary
        location: cloud-c
        values: [{c.host}]
        probes: [{{type: http, url: "{c.url}"}}]
"""


def test_audit_reads_journal_status_and_dns_of_a_running_daemon(tmp_path: Path) -> None:
    targets = [TargetServer(f"127.0.0.{n}").start() for n in (61, 62, 63)]
    dns_port, metrics_port = free_port(), free_port()
    config = tmp_path / "failover.yaml"
    config.write_text(
        DAEMON.format(
            dir=tmp_path,
            metrics=metrics_port,
            dns=dns_port,
            a=targets[0],
            b=targets[1],
            c=targets[2],
        )
    )
    # The journal already holds a recent drill of the secondary and an old one of the tertiary.
    journal = Journal(Store(tmp_path / "state"), "audit-lab")
    now = time.time()
    for to, days in (("secondary", 3), ("tertiary", 45)):
        entry = journal.entry(
            "shop", "switch", Trigger.DRILL, "drill", now - days * 86400, frm="primary", to=to
        )
        Store(tmp_path / "state").append(entry | {"result": "ok"})
    sock = str(tmp_path / "admin.sock")
    daemon = DaemonProcess(config, metrics_port, tmp_path / "admin.sock").start()
    try:

        def health(target: str) -> str:
            status = json.loads(cli("status", "--json", "--socket", sock).stdout)
            return str(status["services"]["shop"]["targets"][target]["health"])

        wait_until(lambda: health("tertiary") == "up", 20, "the tertiary to be UP")
        targets[2].stop()
        wait_until(lambda: health("tertiary") == "down", 20, "the tertiary to be DOWN")
        assert cli("pause", "shop", "--socket", sock).returncode == 0

        args = ["-c", str(config), "--resolver", f"127.0.0.1:{dns_port}", "--format", "json"]
        result = audit(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout)
        found = {(f["check"], f["subject"]): f for f in report["findings"]}
        assert report["summary"]["daemon"] == f"status and journal read from unix socket {sock}"
        assert report["summary"]["dns"] == "NS of 1 zone(s) queried"
        assert ("daemon-state-unknown", "daemon") not in found
        # drills: the secondary's is recent, the tertiary's 45 days old
        assert ("drill-overdue", "services.shop.targets[1]") not in found
        stale = found[("drill-overdue", "services.shop.targets[2]")]
        assert stale["title"] == "shop target tertiary was last drilled 45 days ago"
        # live state: automation paused, a fallback DOWN (not the only one: a warning)
        assert found[("automation-off", "services.shop")]["title"] == "shop is paused"
        down = found[("fallback-down", "services.shop.targets[2]")]
        assert down["severity"] == "warning"
        # the builtin server answers NS ns1.example.test: one operator serves the zone
        single = found[("ns-single-provider", "zone example.test")]
        assert "ns1.example.test" in single["detail"]

        # a wrong token/URL or a dead socket degrades to an info finding, never a failure
        dead = audit("-c", str(config), "--no-dns", "--socket", str(tmp_path / "nope.sock"))
        assert dead.returncode == 0 and "daemon not reachable" in dead.stdout
    finally:
        daemon.stop()
        for target in targets:
            target.close()
