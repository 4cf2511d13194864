"""Several real `failover run` daemons on one real etcd cluster, writing one real BIND zone.

Every instance has its own state dir, admin socket, metrics port and TSIG key: named's log
then says which instance sent each UPDATE (`BindServer.updates`), so a test counts the DNS
writes of each instance at the DNS server itself, not from what the daemons say about
themselves. All instances probe the same two HTTP targets (`primary`, `secondary`) and share
one etcd prefix of their own, so a lab never sees another's leader, views or intents.

Used by `tests/ha/` and `bench/takeover.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.coord.etcd_cluster import EtcdCluster
from tests.ha.netns_target import CutTarget
from tests.providers.bind import ZONE, BindServer
from tests.support import DaemonProcess, Peer, TargetServer, config_text, free_port, wait_until

NAMES = ("fo-a", "fo-b", "fo-c")
SERVICE = "shop"
FQDN = f"{SERVICE}.{ZONE}"
PRIMARY, SECONDARY = "127.0.0.11", "127.0.0.12"
POLICY = "{failback: manual, cooldown: 2s, startup_grace: 3s}"
WAIT = 40.0  # generous bound on every wait (a loaded machine): never a measurement


class Instance:
    """One daemon of the lab, driven like an operator would: signals, its socket, its files."""

    def __init__(self, name: str, workdir: Path, config: Path, metrics_port: int) -> None:
        self.name = name
        self.workdir = workdir
        self.socket = workdir / "admin.sock"
        self.state = workdir / "state"
        self.metrics_port = metrics_port
        self.daemon = DaemonProcess(config, metrics_port, self.socket)
        self.frozen = False  # SIGSTOPped: its socket would not answer

    def __repr__(self) -> str:
        return f"Instance({self.name})"

    @property
    def running(self) -> bool:
        proc = self.daemon.proc
        return proc is not None and proc.poll() is None

    @property
    def answering(self) -> bool:
        return self.running and not self.frozen

    def start(self) -> Instance:
        """Returns once its /readyz answers 200 (it leads or follows, and read DNS back)."""
        self.frozen = False
        self.daemon.start()
        return self

    def kill9(self) -> None:
        if self.frozen:
            self.cont()
        self.daemon.kill9()

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        if self.frozen:
            self.cont()
        return self.daemon.stop()

    def terminate(self) -> None:
        """SIGTERM without waiting (the bench times what follows)."""
        assert self.daemon.proc is not None
        self.daemon.proc.send_signal(signal.SIGTERM)

    def freeze(self) -> None:
        assert self.daemon.proc is not None
        self.daemon.proc.send_signal(signal.SIGSTOP)
        self.frozen = True

    def cont(self) -> None:
        assert self.daemon.proc is not None
        self.daemon.proc.send_signal(signal.SIGCONT)
        self.frozen = False

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        from failover.client import AdminClient

        return asyncio.run(AdminClient(socket=self.socket).call(method, path, body))

    def get(self, path: str) -> Any:
        status, body = self.api("GET", path)
        assert status == 200, body
        return body

    def status(self) -> dict[str, Any]:
        return self.get("/v1/status")  # type: ignore[no-any-return]

    def service(self) -> dict[str, Any]:
        return self.status()["services"][SERVICE]  # type: ignore[no-any-return]

    def readyz(self) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.metrics_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def journal(self) -> list[dict[str, Any]]:
        """What this instance journalled, read from its state dir (also while it is down)."""
        path = self.state / "journal.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def log(self) -> str:
        return self.daemon.log.read_text(errors="replace")


class HaLab:
    """`names` daemons (not started) on `etcd` under a fresh prefix, writing `bind`'s zone."""

    def __init__(
        self,
        etcd: EtcdCluster,
        bind: BindServer,
        *,
        names: tuple[str, ...] = NAMES,
        lease_ttl: int = 3,
        policy: str = POLICY,
        root: Path | None = None,
        dns_ports: dict[str, int] | None = None,
        provider_timeout: dict[str, str] | None = None,
        instance_extra: dict[str, str] | None = None,
        primary: CutTarget | None = None,
        probe_urls: dict[str, str] | None = None,
        more_services: str = "",
    ) -> None:
        """Per instance (by name): `dns_ports` sends its DNS traffic to another port (a proxy
        in front of BIND), `provider_timeout` replaces its provider's 2s, `instance_extra`
        adds keys to its `instance:` (like ", resync_interval: 500ms"), `probe_urls` probes
        the primary at another URL (a path that can be cut). `primary` replaces the loopback
        primary (the caller starts and closes it); `more_services` is YAML appended to
        `services:` (2 spaces in)."""
        missing = [n for n in names if n not in bind.writer_secrets]
        assert not missing, f"start BindServer with writers={names}"
        self.etcd = etcd
        self.bind = bind
        self.lease_ttl = lease_ttl
        # unix socket paths must stay short: a directory of our own under /tmp
        self.root = Path(tempfile.mkdtemp(prefix="ha-", dir=root or "/tmp"))
        self.prefix = f"/ha-{uuid.uuid4().hex[:8]}"
        self._own_primary = primary is None
        self.primary: TargetServer | CutTarget = primary or TargetServer(PRIMARY).start()
        self.secondary = TargetServer(SECONDARY).start()
        self.instances: dict[str, Instance] = {}
        timeout = f"{int(lease_ttl * 1000 / 5)}ms"  # the longest the config allows
        coordination = (
            "coordination:\n"
            "  etcd:\n"
            f"    endpoints: [{', '.join(etcd.endpoints)}]\n"
            f"    prefix: {self.prefix}\n"
            f"    lease_ttl: {lease_ttl}s\n"
            f"    timeout: {timeout}\n"
        )
        for name in names:
            workdir = self.root / name
            workdir.mkdir()
            secret = workdir / "tsig.secret"
            secret.write_text(bind.writer_secrets[name] + "\n")
            port = (dns_ports or {}).get(name, bind.port)
            peer = Peer(
                "bind",
                f"{{type: rfc2136, server: 127.0.0.1, port: {port},"
                f' tsig: {{name: {name}, algorithm: hmac-sha256, secret: "${{file:{secret}}}"}},'
                f" verify: false, timeout: {(provider_timeout or {}).get(name, '2s')},"
                " retry: {attempts: 3, initial: 50ms, max_delay: 200ms, deadline: 3s}}",
                bind.values,
            )
            metrics_port = free_port()
            config = workdir / "failover.yaml"
            text = config_text(
                workdir,
                peer,
                self.primary,
                self.secondary,
                metrics_port=metrics_port,
                instance=name,
                instance_extra=(instance_extra or {}).get(name, ""),
                policy=policy,
                more_services=more_services,
                extra=coordination,
            )
            if name in (probe_urls or {}):
                text = text.replace(self.primary.url, (probe_urls or {})[name])
            config.write_text(text)
            self.instances[name] = Instance(name, workdir, config, metrics_port)

    def __getitem__(self, name: str) -> Instance:
        return self.instances[name]

    def __enter__(self) -> HaLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for instance in self.instances.values():
            if instance.running:
                with contextlib.suppress(Exception):  # the lab is going away: no hand-over
                    instance.kill9()
        if self._own_primary:
            self.primary.close()
        self.secondary.close()

    # -- the daemons --------------------------------------------------------------------------

    def start(self, names: Iterable[str] | None = None) -> HaLab:
        """Start the instances one by one (each returns once ready), then wait for one leader
        and for DNS to serve the primary (the first leader publishes it)."""
        for name in names or self.instances:
            self.instances[name].start()
        self.wait_leader()
        self.wait_answer(self.primary.host)
        return self

    @property
    def answering(self) -> list[Instance]:
        return [i for i in self.instances.values() if i.answering]

    def agreed_leader(self, among: Iterable[Instance] | None = None) -> Instance | None:
        """The leader, when every answering instance (or `among`) names the same one, and that
        one says it leads and no other does; else None."""
        group = list(among) if among is not None else self.answering
        statuses = {i.name: i.status() for i in group}
        named = {s["leader_name"] for s in statuses.values()}
        leading = [n for n, s in statuses.items() if s["leader"]]
        if len(named) != 1 or leading != list(named):
            return None
        return self.instances[leading[0]]

    def wait_leader(
        self, among: Iterable[Instance] | None = None, timeout: float = WAIT
    ) -> Instance:
        group = list(among) if among is not None else None
        return wait_until(  # type: ignore[no-any-return]
            lambda: self.agreed_leader(group), timeout, "one leader all instances agree on"
        )

    def wait_no_leader(self, timeout: float = WAIT) -> dict[str, dict[str, Any]]:
        """Until no answering instance leads nor names a leader; their statuses."""

        def nobody() -> dict[str, dict[str, Any]] | None:
            statuses = {i.name: i.status() for i in self.answering}
            if any(s["leader"] or s["leader_name"] for s in statuses.values()):
                return None
            return statuses

        return wait_until(nobody, timeout, "no leader anywhere")  # type: ignore[no-any-return]

    # -- what DNS serves and who wrote it -----------------------------------------------------

    def answer(self) -> list[str]:
        return self.bind.values(FQDN)

    def wait_answer(self, value: str, timeout: float = WAIT) -> None:
        wait_until(lambda: self.answer() == [value], timeout, f"BIND to answer {FQDN} {value}")

    def updates(self) -> dict[str, int]:
        """UPDATE messages BIND received, per instance (zero included)."""
        counts = self.bind.updates()
        return {name: counts.get(name, 0) for name in self.instances}

    def entries(self, *kinds: str) -> list[dict[str, Any]]:
        """The union of every instance's journal, of these kinds, in time order."""
        found = [
            e
            for i in self.instances.values()
            for e in i.journal()
            if not kinds or e["kind"] in kinds
        ]
        return sorted(found, key=lambda e: float(e["ts"]))

    def switches(self, result: str = "ok") -> list[dict[str, Any]]:
        """Switches journalled with `result` by any instance (the first publication is a
        `publish`, not a switch)."""
        return [e for e in self.entries("switch") if e.get("result") == result]

    def wait_switches(self, count: int) -> list[dict[str, Any]]:
        """Until `count` switches are journalled (an UPDATE reaches BIND before the switch is
        on disk: the journal is written once the provider answered); those switches."""
        wait_until(lambda: len(self.switches()) >= count, WAIT, f"{count} switch(es) journalled")
        return self.switches()

    def wait_health(self, target: str, health: str, among: Iterable[Instance]) -> None:
        group = list(among)

        def seen() -> bool:
            return all(i.service()["targets"][target]["health"] == health for i in group)

        names = ", ".join(i.name for i in group)
        wait_until(seen, WAIT, f"{target} {health} at {names}")
