"""An HTTP target in a network namespace of our own, whose path from ONE instance can be cut.

The namespace is reached over a veth pair (host end 10.214.N.1, target 10.214.N.2). One HTTP
server in it answers /healthz on two ports: `url` (port 8080) for most instances and `cut_url`
(port 8081) for the one to cut off. `cut()` adds an nftables rule in the namespace that drops
every packet to 8081 (no RST, no ICMP: a partition), `heal()` removes it; both ports are the same
server, so `stop()` (the target really dies) is seen by everyone. Nothing is changed in the
host's own namespace besides the host end of the veth; everything is removed by `close()`.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys

from tests.faults.netns import require_netns
from tests.support import wait_until

PORT, CUT_PORT = 8080, 8081
SERVER = """
import sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

servers = [ThreadingHTTPServer((sys.argv[1], int(p)), Handler) for p in sys.argv[2:]]
for server in servers[1:]:
    threading.Thread(target=server.serve_forever, daemon=True).start()
servers[0].serve_forever()
"""


def _run(*args: str, stdin: str | None = None) -> None:
    subprocess.run(args, input=stdin, text=True, check=True, capture_output=True, timeout=20)


class CutTarget:
    def __init__(self) -> None:
        require_netns()
        tag = secrets.token_hex(3)
        self.ns, self._host_if, ns_if = f"fo-cut-{tag}", f"focut{tag}a", f"focut{tag}b"
        net = int(tag[:2], 16)
        self.host_ip, self.host = f"10.214.{net}.1", f"10.214.{net}.2"
        self.port = PORT
        self._server: subprocess.Popen[bytes] | None = None
        _run("ip", "netns", "add", self.ns)
        try:
            _run("ip", "link", "add", self._host_if, "type", "veth", "peer", "name", ns_if)
            _run("ip", "link", "set", ns_if, "netns", self.ns)
            _run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self._host_if)
            _run("ip", "link", "set", self._host_if, "up")
            _run("ip", "-n", self.ns, "addr", "add", f"{self.host}/30", "dev", ns_if)
            _run("ip", "-n", self.ns, "link", "set", ns_if, "up")
            _run("ip", "-n", self.ns, "link", "set", "lo", "up")
            table = (
                "table inet cut {\n"
                "  chain input { type filter hook input priority 0; policy accept; }\n"
                "}\n"
            )
            _run("ip", "netns", "exec", self.ns, "nft", "-f", "-", stdin=table)
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        return f"http://{self.host}:{PORT}/healthz"

    @property
    def cut_url(self) -> str:
        return f"http://{self.host}:{CUT_PORT}/healthz"

    def start(self) -> CutTarget:
        command = [sys.executable, "-c", SERVER, self.host, str(PORT), str(CUT_PORT)]
        self._server = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, 20, "the target in its namespace to answer")
        return self

    def _answers(self) -> bool:
        import urllib.request

        with urllib.request.urlopen(self.url, timeout=1) as resp:
            return resp.status == 200

    def stop(self) -> None:
        if self._server is not None:
            self._server.kill()
            self._server.wait(10)
            self._server = None

    def cut(self) -> None:
        """Drop every packet to `cut_url`'s port, in the namespace."""
        rule = f"add rule inet cut input tcp dport {CUT_PORT} drop\n"
        _run("ip", "netns", "exec", self.ns, "nft", "-f", "-", stdin=rule)

    def heal(self) -> None:
        _run("ip", "netns", "exec", self.ns, "nft", "flush", "chain", "inet", "cut", "input")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        subprocess.run(["ip", "link", "del", self._host_if], capture_output=True, timeout=20)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=20)

    def __enter__(self) -> CutTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
