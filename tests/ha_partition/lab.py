"""Several daemons on one etcd cluster writing one real BIND, one of them in a network namespace
of its own where nftables can cut it off from a single target (no netem here).

The daemon in the namespace cannot reach the host's loopback, so everything it must reach listens
on addresses of the veth pair this lab creates as well: etcd's client URLs, BIND and both HTTP
targets sit on the host end (`HOST`, plus one address per target), the namespaced daemon's
metrics on the namespace end. The host's own namespace only gains the host end of the veth and
its addresses; every nftables rule lives inside the namespace; all is removed at `close()`.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tests.coord.etcd_cluster import EtcdCluster
from tests.faults.netns import require_netns
from tests.providers.bind import KEY_NAME, BindServer
from tests.support import REPO, Peer, TargetServer, config_text, free_port, wait_until

TTL = 3  # seconds: short leases keep the tests quick; etcd grants at least 2
POLICY = "{failback: manual, cooldown: 2s, startup_grace: 1s}"


def _run(*args: str, stdin: str | None = None) -> None:
    subprocess.run(
        args,
        input=stdin.encode() if stdin is not None else None,
        check=True,
        capture_output=True,
        timeout=20,
    )


class Veth:
    """A namespace `ns` joined to the host by a veth pair on 10.214.N.0/24: the host end is
    `.1` (etcd, BIND) and `.11`/`.12` (the two targets), the namespace end `.2`."""

    def __init__(self) -> None:
        require_netns()
        tag = secrets.token_hex(3)
        self.ns, self.host_if, self.ns_if = f"fo-pt-{tag}", f"fopt{tag}a", f"fopt{tag}b"
        net = 1 + int(tag[:2], 16) % 250
        self.prefix = f"10.214.{net}"
        self.host = f"{self.prefix}.1"
        self.inside = f"{self.prefix}.2"
        self.target_addresses = (f"{self.prefix}.11", f"{self.prefix}.12")
        self._made = False

    def open(self) -> Veth:
        _run("ip", "netns", "add", self.ns)
        self._made = True
        _run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _run("ip", "link", "set", self.ns_if, "netns", self.ns)
        for address in (self.host, *self.target_addresses):
            _run("ip", "addr", "add", f"{address}/24", "dev", self.host_if)
        _run("ip", "link", "set", self.host_if, "up")
        _run("ip", "-n", self.ns, "addr", "add", f"{self.inside}/24", "dev", self.ns_if)
        _run("ip", "-n", self.ns, "link", "set", self.ns_if, "up")
        _run("ip", "-n", self.ns, "link", "set", "lo", "up")
        return self

    def cut(self, address: str) -> None:
        """Inside the namespace only: drop every packet to and from `address`."""
        rules = (
            "table inet partition {\n"
            f"  chain output {{ type filter hook output priority 0; ip daddr {address} drop; }}\n"
            f"  chain input {{ type filter hook input priority 0; ip saddr {address} drop; }}\n"
            "}\n"
        )
        _run("ip", "netns", "exec", self.ns, "nft", "-f", "-", stdin=rules)

    def heal(self) -> None:
        _run("ip", "netns", "exec", self.ns, "nft", "delete", "table", "inet", "partition")

    def close(self) -> None:
        if not self._made:
            return
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=20)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=20)
        self._made = False


class VethEtcd(EtcdCluster):
    """The loopback cluster of the coordination tests, whose members also serve clients on the
    veth's host address (same port)."""

    def __init__(self, host: str, size: int = 3) -> None:
        super().__init__(size)
        self.extra_host = host

    def _spawn(self, member: Any) -> None:
        urls = f"{member.endpoint},http://{self.extra_host}:{member.client_port}"
        self.extra_args = ("--listen-client-urls", urls)  # the later flag wins
        super()._spawn(member)

    @property
    def veth_endpoints(self) -> list[str]:
        return [f"http://{self.extra_host}:{m.client_port}" for m in self.members]


class VethBind(BindServer):
    """BIND listening on 127.0.0.1 and on the veth's host address."""

    def __init__(self, directory: Path, host: str) -> None:
        super().__init__(directory)
        self.extra_host = host

    def _write_config(self) -> Path:
        conf = super()._write_config()
        text = conf.read_text().replace("{ 127.0.0.1; }", f"{{ 127.0.0.1; {self.extra_host}; }}")
        conf.write_text(text)
        return conf

    def peer(self, workdir: Path) -> Peer:
        secret = workdir / "tsig.secret"
        secret.write_text(self.secret + "\n")
        return Peer(
            "bind",
            f"{{type: rfc2136, server: {self.extra_host}, port: {self.port},"
            f' tsig: {{name: {KEY_NAME}, algorithm: hmac-sha256, secret: "${{file:{secret}}}"}},'
            " verify: false, timeout: 2s,"
            " retry: {attempts: 3, initial: 50ms, max_delay: 200ms, deadline: 5s}}",
            self.values,
            secrets=(self.secret,),
        )


class Instance:
    """One `failover run`, on the host or (with `netns`) inside the lab's namespace."""

    def __init__(self, name: str, workdir: Path, config: str, metrics: str, netns: str | None):
        self.name = name
        self.workdir = workdir
        self.socket = workdir / "admin.sock"
        self.metrics_url = f"http://{metrics}/metrics"
        self.path = workdir / "failover.yaml"
        self.path.write_text(config)
        self.log = workdir / "daemon.log"
        self.netns = netns
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Instance:
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        command = [*prefix, sys.executable, "-m", "failover", "run", "-c", str(self.path)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            wait_until(self.ready, 30, f"{self.name} to serve its admin socket")
        except AssertionError:
            self.kill()
            raise AssertionError(f"{self.name} did not start:\n{self.log_text()}") from None
        return self

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.proc.returncode}: {self.log_text()}")
        return self.socket.exists() and self.api("GET", "/v1/status")[0] == 200

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        import asyncio

        from failover.client import AdminClient

        return asyncio.run(AdminClient(socket=self.socket).call(method, path, body))

    def status(self) -> dict[str, Any]:
        code, body = self.api("GET", "/v1/status")
        assert code == 200, body
        return body  # type: ignore[no-any-return]

    def target(self, name: str, service: str = "shop") -> dict[str, Any]:
        return self.status()["services"][service]["targets"][name]  # type: ignore[no-any-return]

    def history(self) -> list[dict[str, Any]]:
        code, body = self.api("GET", "/v1/history?limit=1000")
        assert code == 200, body
        return body  # type: ignore[no-any-return]

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            return str(resp.read().decode())

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class PartitionLab:
    """A 3-member etcd cluster, BIND, two HTTP targets and `names` daemons sharing a prefix;
    `names[0]` runs inside the namespace. Use as a context manager."""

    def __init__(self, workdir: Path, names: tuple[str, ...] = ("fo-a", "fo-b", "fo-c")):
        self.workdir = workdir
        self.names = names
        self.veth = Veth()
        self.etcd: VethEtcd | None = None
        self.bind: VethBind | None = None
        self.targets: list[TargetServer] = []
        self.instances: dict[str, Instance] = {}
        self.prefix = f"/pt-{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> PartitionLab:
        try:
            self.veth.open()
            self.etcd = VethEtcd(self.veth.host).start()
            self.bind = VethBind(self.workdir / "bind", self.veth.host).start()
            self.targets = [TargetServer(a).start() for a in self.veth.target_addresses]
            peer = self.bind.peer(self.workdir)
            for index, name in enumerate(self.names):
                inside = index == 0
                self.instances[name] = self._instance(name, peer, inside)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def primary(self) -> TargetServer:
        return self.targets[0]

    @property
    def secondary(self) -> TargetServer:
        return self.targets[1]

    def _instance(self, name: str, peer: Peer, inside: bool) -> Instance:
        assert self.etcd is not None
        workdir = self.workdir / name
        workdir.mkdir()
        host = self.veth.inside if inside else "127.0.0.1"
        metrics = f"{host}:{free_port('127.0.0.1')}"
        endpoints = ", ".join(self.etcd.veth_endpoints)
        text = config_text(
            workdir,
            peer,
            self.primary,
            self.secondary,
            metrics_port=0,
            instance=name,
            policy=POLICY,
            extra=(
                "coordination:\n"
                f"  etcd: {{endpoints: [{endpoints}], prefix: {self.prefix},"
                f" lease_ttl: {TTL}s, timeout: 600ms}}\n"
            ),
        ).replace('listen: "127.0.0.1:0"', f'listen: "{metrics}"')
        return Instance(name, workdir, text, metrics, self.veth.ns if inside else None)

    def answer(self) -> list[str]:
        assert self.bind is not None
        return self.bind.values("shop.example.test")

    def serial(self) -> int:
        assert self.bind is not None
        return self.bind.serial()

    def leader(self) -> str | None:
        names = {i.status()["leader_name"] for i in self.instances.values() if i.proc}
        return names.pop() if len(names) == 1 else None

    def etcd_get(self, key: str) -> list[dict[str, Any]]:
        """The keys under `key` (a prefix), read with etcdctl (not the daemon's client)."""
        assert self.etcd is not None
        out = self.etcd.etcdctl("get", "--prefix", key, "-w", "json")
        assert out.returncode == 0, out.stderr
        return list(json.loads(out.stdout).get("kvs", []))

    def close(self) -> None:
        for instance in self.instances.values():
            instance.kill()
        for target in self.targets:
            target.close()
        self.targets = []
        if self.bind is not None:
            self.bind.stop()
        if self.etcd is not None:
            self.etcd.close()
        self.veth.close()


def hold(seconds: float) -> None:
    """Give a wrong decision the chance to happen (a negative can only be observed over time;
    nothing is asserted about how long anything takes)."""
    time.sleep(seconds)
