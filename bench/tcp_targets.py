"""TCP targets for the benches that run the real daemon, and the checks that keep them honest.

The daemon runs identical probes once and feeds every job (failover.probes.sharing), so a bench
that points N targets at one listener measures one probe, not N. Each target therefore gets its
own port: 10,000 services need 20,000 listening sockets (in one child process per TcpTarget,
and `raise_nofile` when one needs more than the limit), and `require_distinct` refuses to
start a bench whose configuration would share probes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import selectors
import socket
import subprocess
import sys
from pathlib import Path

PORT_BASE = 10000  # below the ephemeral range: our listeners never take a client's port
FD_MARGIN = 256  # descriptors a listener process needs besides its listening sockets


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of a restart
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _bind(host: str, count: int, ports: list[int]) -> list[socket.socket]:
    """The given ports (a restart), or `count` free ones from PORT_BASE up."""
    if ports:
        return [_listen(host, port) for port in ports]
    socks: list[socket.socket] = []
    port, end = PORT_BASE, _ephemeral_start()
    while len(socks) < count:
        if port >= end:
            raise SystemExit(
                f"only {len(socks)} free TCP ports on {host} in {PORT_BASE}-{end - 1}, "
                f"{count} needed: use fewer services"
            )
        try:
            socks.append(_listen(host, port))
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
        port += 1
    return socks


def _serve(host: str, count: int, ports: list[int]) -> None:
    """The listener process: print the ports, then accept and close connections on all of
    them until stdin says `stop` (or closes); `count` prints how many were accepted."""
    socks = _bind(host, count, ports)
    print(" ".join(str(sock.getsockname()[1]) for sock in socks), flush=True)
    accepted = 0
    with selectors.DefaultSelector() as selector:
        selector.register(sys.stdin, selectors.EVENT_READ)
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                if key.fd == sys.stdin.fileno():
                    command = sys.stdin.readline().strip()
                    with contextlib.suppress(OSError):  # the bench is gone: nobody reads
                        print(accepted, flush=True)
                    if command != "count":  # stop, or the bench is gone (EOF)
                        os._exit(0)  # the kernel closes every socket: refused from here on
                    continue
                listener = key.fileobj
                assert isinstance(listener, socket.socket)
                while True:
                    try:
                        conn, _ = listener.accept()
                    except OSError:  # BlockingIOError: the queue is empty
                        break
                    conn.close()
                    accepted += 1


class TcpTarget:
    """`count` listening sockets on `host` (target i listens on `address(i)`) in a child
    process that accepts and closes every connection at once (one `selectors` loop): what a
    `tcp` probe needs, at a fraction of an HTTP server's cost. `stop()` ends that process, so
    every probe's next attempt is refused (RST); `start()` again reopens the same ports.

    A process of its own: 10,000 services need 20,000 listening sockets, and a hard
    RLIMIT_NOFILE of 20,000 without CAP_SYS_RESOURCE (containers) holds them only if they are
    split. Ports come from PORT_BASE up to the start of the ephemeral range, skipping those in
    use: a listener bound there never takes the port of an outgoing connection."""

    def __init__(self, host: str, count: int = 1) -> None:
        self.host = host
        self.count = count
        self.ports: list[int] = []
        self._accepted = 0
        self._proc: subprocess.Popen[str] | None = None

    def address(self, i: int = 0) -> str:
        """host:port of target i (0 <= i < count)."""
        return f"{self.host}:{self.ports[i]}"

    def start(self) -> TcpTarget:
        if self._proc is not None:
            return self
        command = [sys.executable, __file__, self.host, str(self.count), *map(str, self.ports)]
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.wait(10)
            raise SystemExit(f"the TCP listeners on {self.host} did not start (see above)")
        self.ports = [int(port) for port in line.split()]
        self._proc = proc
        return self

    def _ask(self, command: str) -> int:
        assert self._proc is not None and self._proc.stdin and self._proc.stdout
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        return int(self._proc.stdout.readline() or self._accepted)

    @property
    def accepted(self) -> int:
        """Connections accepted so far (over every start)."""
        return self._accepted + (self._ask("count") if self._proc is not None else 0)

    def stop(self) -> None:
        """Refuse connections from now on (every listening socket is gone when this returns)."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        try:
            assert proc.stdin and proc.stdout
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            self._accepted += int(proc.stdout.readline() or 0)
        except (OSError, ValueError):
            pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def raise_nofile(needed: int, what: str) -> None:
    """Make RLIMIT_NOFILE (soft and hard) at least `needed`, or exit saying how many are needed.
    The listener processes and the daemon the bench spawns inherit the raised limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    try:
        nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        nr_open = needed
    problem = ""
    if needed > nr_open:
        problem = f"above the kernel's maximum (/proc/sys/fs/nr_open = {nr_open})"
    else:
        new_hard = hard if hard == resource.RLIM_INFINITY or hard >= needed else needed
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, new_hard))
            return
        except (ValueError, OSError) as exc:
            problem = f"raising RLIMIT_NOFILE from {soft} (hard {hard}) failed: {exc}"
    raise SystemExit(
        f"this bench needs {needed} file descriptors per process ({what} + {FD_MARGIN} more); "
        f"{problem}. Run it as root, raise the limit beforehand (ulimit -n {needed}), "
        "or use fewer services"
    )


def require_distinct(config_path: Path, targets: int) -> str:
    """Exit unless the daemon would run one distinct probe per target for this configuration
    (the probe jobs it builds, deduplicated as it does); else the `probes:` summary line."""
    from failover.config.loader import load_config
    from failover.config.parse import ConfigError
    from failover.probes.sharing import distinct
    from failover.wiring import probe_jobs

    try:
        config = load_config(config_path, missing_secrets=[])
    except ConfigError as exc:
        raise SystemExit(f"{config_path}: the bench wrote an invalid configuration: {exc}") from exc
    specs = [job.spec for job in probe_jobs(config)]
    count = distinct(specs)
    if count != targets or len(specs) != targets:
        raise SystemExit(
            f"{config_path}: {count} distinct probes ({len(specs)} configured) for {targets} "
            "targets: identical probes run once for all their targets, so the bench would not "
            "measure the probe engine; give every target its own address"
        )
    return f"probes: {len(specs)} configured, {count} distinct (one per target)"


if __name__ == "__main__":  # python bench/tcp_targets.py HOST COUNT [PORT...]: see TcpTarget
    _serve(sys.argv[1], int(sys.argv[2]), [int(port) for port in sys.argv[3:]])
