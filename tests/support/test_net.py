"""The test peers themselves: a target stopped under a flood of connections must not leave a
socket behind (one garbage-collected later fails whichever test is running then)."""

from __future__ import annotations

import gc
import socket
import threading
import time
import warnings

from tests.support.net import TargetServer


def test_a_target_stopped_under_a_flood_of_connections_leaks_no_transport() -> None:
    server = TargetServer("127.0.0.1").start()
    done = threading.Event()

    def flood() -> None:
        while not done.is_set():
            try:
                with socket.create_connection((server.host, server.port), timeout=0.5) as conn:
                    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            except OSError:  # stopped: refused
                time.sleep(0.001)

    clients = [threading.Thread(target=flood) for _ in range(4)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for client in clients:
            client.start()
        try:
            for _ in range(40):  # before the fix: ~30 sockets leaked in 40 stops
                time.sleep(0.02)
                server.stop()
                time.sleep(0.01)
                server.start()
        finally:
            done.set()
            for client in clients:
                client.join(5)
            server.close()
        gc.collect()
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaked, leaked[:3]
