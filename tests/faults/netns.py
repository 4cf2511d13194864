"""A blackholed address for fault tests: a network namespace of our own whose nftables input
policy drops every packet, reached over a veth pair. Packets to it vanish (no RST, no ICMP),
like an API endpoint behind a dead link. Nothing is changed in the host's own namespace
besides the host end of the veth, and everything is removed on exit."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=20)


def require_netns() -> None:
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"fault tests need {' and '.join(missing)}: apt-get install iproute2 nftables")
    if os.geteuid() != 0:
        pytest.fail("fault tests create network namespaces: run them as root (CI does)")


@contextmanager
def blackhole() -> Iterator[str]:
    """Yield an IPv4 address whose packets are all dropped."""
    require_netns()
    tag = secrets.token_hex(3)
    ns, host_if, ns_if = f"fo-bh-{tag}", f"fobh{tag}a", f"fobh{tag}b"
    net = int(tag[:2], 16)
    host_ip, ns_ip = f"10.213.{net}.1", f"10.213.{net}.2"
    _run("ip", "netns", "add", ns)
    try:
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _run("ip", "link", "set", ns_if, "netns", ns)
        _run("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        _run("ip", "link", "set", host_if, "up")
        _run("ip", "-n", ns, "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        _run("ip", "-n", ns, "link", "set", ns_if, "up")
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        rules = (
            "table inet blackhole {\n"
            "  chain input { type filter hook input priority 0; policy drop; }\n"
            "}\n"
        )
        subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "-f", "-"],
            input=rules.encode(),
            check=True,
            capture_output=True,
            timeout=20,
        )
        yield ns_ip
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=20)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
