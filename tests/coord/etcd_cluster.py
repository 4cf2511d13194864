"""A real etcd cluster on loopback for the coordination tests, the multi-daemon tests and the
takeover bench: fresh data dirs, `--heartbeat-interval 100 --election-timeout 1000`,
free client and peer ports, health checked with `etcdctl endpoint health`.

Members can be killed (SIGKILL: what a crashed host looks like, and the only quick stop: SIGTERM
can take 7 s) and started again on the same data dir, one by one, to take the cluster's quorum
away and give it back. Everything is SIGKILLed at `close()`. Tests skip only when etcd is not
installed (`apt-get install etcd-server etcd-client`, which `scripts/test` does).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import free_port

HOST = "127.0.0.1"


def _pick_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(HOST)
        if port not in ports:
            ports.append(port)
    return ports


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{HOST}:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class EtcdCluster:
    """`size` members named m0, m1…; `start()` then `endpoints`, `kill(i)`, `restart(i)`, `close()`.

    Data lives in a fresh directory under /dev/shm when available (etcd fsyncs every write; on a
    busy disk that alone can stretch a request past a short test timeout)."""

    def __init__(self, size: int = 3, *, extra_args: tuple[str, ...] = ()) -> None:
        missing = [tool for tool in ("etcd", "etcdctl") if shutil.which(tool) is None]
        if missing:
            pytest.skip(
                f"etcd is not installed (missing {', '.join(missing)}): "
                "apt-get install etcd-server etcd-client"
            )
        shm = Path("/dev/shm")
        self.dir = Path(tempfile.mkdtemp(prefix="etcd-test-", dir=shm if shm.is_dir() else None))
        self.extra_args = extra_args
        self.user: str | None = None  # `name:password` for etcdctl once auth is enabled
        ports = _pick_ports(2 * size)
        self.members = [
            Member(
                f"m{i}",
                ports[2 * i],
                ports[2 * i + 1],
                self.dir / f"m{i}",
                self.dir / f"m{i}.log",
            )
            for i in range(size)
        ]
        self._initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def start(self, timeout: float = 30.0) -> EtcdCluster:
        for member in self.members:
            self._spawn(member)
        self.wait_healthy(timeout=timeout)
        return self

    def _spawn(self, member: Member) -> None:
        command = [
            "etcd",
            "--name", member.name,
            "--data-dir", str(member.data_dir),
            "--listen-client-urls", member.endpoint,
            "--advertise-client-urls", member.endpoint,
            "--listen-peer-urls", member.peer_url,
            "--initial-advertise-peer-urls", member.peer_url,
            "--initial-cluster", self._initial_cluster,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", self.dir.name,
            "--heartbeat-interval", "100",
            "--election-timeout", "1000",
            "--log-level", "warn",
            *self.extra_args,
        ]  # fmt: skip
        log = member.log_path.open("ab")
        try:
            member.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()

    def etcdctl(
        self, *args: str, endpoints: list[str] | None = None, timeout: float = 10.0
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "ETCDCTL_API": "3"}
        command = ["etcdctl", f"--endpoints={','.join(endpoints or self.endpoints)}"]
        command += [f"--user={self.user}", *args] if self.user else list(args)
        return subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def healthy(self, index: int) -> bool:
        member = self.members[index]
        if not member.running:
            return False
        try:
            result = self.etcdctl(
                "endpoint", "health", "--command-timeout=1s", endpoints=[member.endpoint]
            )
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    def wait_healthy(self, indexes: list[int] | None = None, timeout: float = 30.0) -> None:
        """Until every listed member (default: all running ones) answers a quorum read."""
        wanted = indexes if indexes is not None else [
            i for i, m in enumerate(self.members) if m.running
        ]  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            sick = [i for i in wanted if not self.healthy(i)]
            if not sick:
                return
            if time.monotonic() > deadline:
                logs = {self.members[i].name: self.tail(i) for i in sick}
                raise AssertionError(f"etcd members {sick} not healthy after {timeout}s: {logs}")
            time.sleep(0.1)

    def tail(self, index: int, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            text = self.members[index].log_path.read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def kill(self, index: int) -> None:
        """SIGKILL one member (its data stays for `restart`)."""
        member = self.members[index]
        if member.process is not None:
            with contextlib.suppress(ProcessLookupError):
                member.process.send_signal(signal.SIGKILL)
            member.process.wait(timeout=10)
            member.process = None

    def restart(self, index: int, *, wait: bool = True) -> None:
        """Start a killed member again on its data dir (it rejoins with its identity)."""
        member = self.members[index]
        if not member.running:
            self._spawn(member)
        if wait:
            self.wait_healthy([index])

    def revive(self) -> None:
        """Every member running and healthy again (between tests)."""
        for index, member in enumerate(self.members):
            if not member.running:
                self.restart(index, wait=False)
        self.wait_healthy()

    def close(self) -> None:
        for index in range(len(self.members)):
            self.kill(index)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def running_cluster(members: int = 3) -> Iterator[EtcdCluster]:
    """A started cluster of `members`, closed (data removed) however the test ends."""
    cluster = EtcdCluster(members).start()
    try:
        yield cluster
    finally:
        cluster.close()
