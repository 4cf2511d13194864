"""TCP targets for the benches that run the real daemon, and the checks that keep them honest.

The daemon runs identical probes once and feeds every job (failover.probes.sharing), so a bench
that points N targets at one listener measures one probe, not N. Each target therefore gets its
own port; 10,000 services need 20,000 listening sockets, hence `raise_nofile`, and
`require_distinct` refuses to start a bench whose configuration would share probes.
"""

from __future__ import annotations

import errno
import resource
import selectors
import socket
import threading
from pathlib import Path

PORT_BASE = 10000  # below the ephemeral range: our listeners never take a client's port
FD_MARGIN = 1024  # descriptors the bench needs besides its listening sockets


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


class TcpTarget:
    """`count` listening sockets on `host` (target i listens on `address(i)`), one thread
    accepting over all of them (`selectors`) and closing every connection at once: what a `tcp`
    probe needs, at a fraction of an HTTP server's cost. `stop()` closes every socket, so every
    probe's next attempt is refused (RST); `start()` again reopens the same ports.

    Ports come from PORT_BASE up to the start of the ephemeral range, skipping those in use: a
    listener bound there cannot take a port the kernel would give an outgoing connection."""

    def __init__(self, host: str, count: int = 1) -> None:
        self.host = host
        self.count = count
        self.ports: list[int] = []
        self.accepted = 0
        self._socks: list[socket.socket] = []
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake: tuple[socket.socket, socket.socket] | None = None

    def address(self, i: int = 0) -> str:
        """host:port of target i (0 <= i < count)."""
        return f"{self.host}:{self.ports[i]}"

    def _listen(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of a restart
            sock.bind((self.host, port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    def _bind_new(self) -> list[socket.socket]:
        socks: list[socket.socket] = []
        port, end = PORT_BASE, _ephemeral_start()
        while len(socks) < self.count:
            if port >= end:
                for sock in socks:
                    sock.close()
                raise SystemExit(
                    f"only {len(socks)} free TCP ports on {self.host} in {PORT_BASE}-{end - 1}, "
                    f"{self.count} needed: use fewer services"
                )
            try:
                socks.append(self._listen(port))
            except OSError as exc:
                if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                    for sock in socks:
                        sock.close()
                    raise
            port += 1
        return socks

    def start(self) -> TcpTarget:
        if self._socks:
            return self
        if self.ports:
            socks: list[socket.socket] = []
            try:
                for port in self.ports:
                    socks.append(self._listen(port))
            except OSError:
                for sock in socks:
                    sock.close()
                raise
        else:
            socks = self._bind_new()
            self.ports = [sock.getsockname()[1] for sock in socks]
        self._socks = socks
        self._stopping = threading.Event()
        self._wake = socket.socketpair()
        self._thread = threading.Thread(
            target=self._accept, args=(socks, self._wake[0], self._stopping), daemon=True
        )
        self._thread.start()
        return self

    def _accept(
        self, socks: list[socket.socket], wake: socket.socket, stopping: threading.Event
    ) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(wake, selectors.EVENT_READ)
            for sock in socks:
                selector.register(sock, selectors.EVENT_READ)
            while not stopping.is_set():
                for key, _ in selector.select():
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is wake:
                        continue
                    while True:
                        try:
                            conn, _ = sock.accept()
                        except OSError:  # BlockingIOError: the queue is empty
                            break
                        conn.close()
                        self.accepted += 1

    def stop(self) -> None:
        """Refuse connections from now on (every listening socket is gone when this returns)."""
        if not self._socks:
            return
        self._stopping.set()
        if self._wake is not None:
            self._wake[1].send(b"x")
        if self._thread is not None:
            self._thread.join(5)
        for sock in self._socks:
            sock.close()  # new SYNs are answered with RST from here on
        self._socks = []
        if self._wake is not None:
            for sock in self._wake:
                sock.close()
            self._wake = None


def raise_nofile(needed: int, what: str) -> None:
    """Make RLIMIT_NOFILE (soft and hard) at least `needed`, or exit saying how many are needed.
    The daemon the bench spawns inherits the raised limit."""
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
        f"this bench needs {needed} file descriptors ({what} + {FD_MARGIN} for the rest); "
        f"{problem}. Run it as root, raise the limit beforehand (ulimit -n {needed}), "
        "or use fewer services"
    )


def require_distinct(config_path: Path, targets: int) -> str:
    """Exit unless the daemon would run one distinct probe per target for this configuration
    (the probe jobs it builds, deduplicated as it does); else the `probes:` summary line."""
    from failover.config.loader import load_config
    from failover.config.parse import ConfigError
    from failover.daemon import probe_jobs
    from failover.probes.sharing import distinct

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
