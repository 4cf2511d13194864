"""A real BIND `named` on loopback, the peer of the rfc2136 provider tests.

Each test module gets a fresh directory (the zone journal persists) with a TSIG key made by
`tsig-keygen`, two zones (the main key may transfer the first) and a second, limited key. named
runs in the foreground (`-g`) as the current user; it is stopped through the pid it wrote. Tests
skip only when BIND is not installed (`apt-get install bind9 bind9-utils`, which `scripts/test`
does).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update
import pytest

from failover.config.types import RetryConfig, Rfc2136ProviderConfig, Secret, TsigConfig
from failover.providers.rfc2136 import Rfc2136Provider
from tests.support import free_port, wait_until

ZONE = "example.test"
OTHER = "other.test"
KEY_NAME = "failover-key"
LIMITED_KEY = "limited-key"  # may only touch limited.example.test/A
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")
# one line per RR operation of an UPDATE, or one line for a refused or failed one:
# "client @0x7f… 127.0.0.1#60644/key fo-a: updating zone 'example.test/IN': adding an RR …"
_UPDATE_LINE = re.compile(r"client @(\S+) \S+#(\d+)/key (\S+): (?:updating zone|update ')")


def find_tool(name: str) -> str | None:
    """`named` and `tsig-keygen` live in sbin, which is not on a normal user's PATH."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    return shutil.which(name, path=path)


def _secret(key_text: str) -> str:
    match = re.search(r'secret\s+"([^"]+)"', key_text)
    assert match, key_text
    return match.group(1)


class BindServer:
    """named serving example.test and other.test on 127.0.0.1:port (UDP and TCP)."""

    def __init__(self, directory: Path, *, writers: tuple[str, ...] = ()) -> None:
        """`writers`: more TSIG key names with the main key's rights, one per writer, so that
        named's log says which writer sent each UPDATE (`updates()`)."""
        missing = [t for t in ("named", "tsig-keygen", "named-checkconf") if not find_tool(t)]
        if missing:
            pytest.skip(
                f"BIND is not installed (missing {', '.join(missing)}): apt-get install bind9"
            )
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.secret = ""
        self.limited_secret = ""
        self.writers = writers
        self.writer_secrets: dict[str, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "named.log"

    def _keygen(self, name: str) -> str:
        tool = find_tool("tsig-keygen")
        assert tool
        text = subprocess.run(
            [tool, "-a", "hmac-sha256", name], check=True, capture_output=True, text=True
        ).stdout
        (self.dir / f"{name}.key").write_text(text)
        return _secret(text)

    def _write_config(self) -> Path:
        d = self.dir
        self.secret = self._keygen(KEY_NAME)
        self.limited_secret = self._keygen(LIMITED_KEY)
        self.writer_secrets = {name: self._keygen(name) for name in self.writers}
        everyone = (KEY_NAME, *self.writers)
        grants = "".join(f"grant {name} zonesub ANY;\n    " for name in everyone)
        for zone in (ZONE, OTHER):
            (d / f"{zone}.zone").write_text(
                "$TTL 60\n"
                "@ SOA ns1 hostmaster 1 3600 600 604800 60\n"
                "@ NS ns1\n"
                "ns1 A 127.0.0.1\n"
                "www A 192.0.2.10\n"
            )
        # example.test may be transferred with the main key (reads of many names use one
        # AXFR); other.test keeps the global `allow-transfer { none; }` (reads fall back to
        # one query per name)
        transfer = {ZONE: f"  allow-transfer {{ key {KEY_NAME}; }};\n", OTHER: ""}
        zones = "".join(
            f'zone "{zone}" {{ type primary; file "{d}/{zone}.zone";\n{transfer[zone]}'
            f"  update-policy {{ {grants}grant {LIMITED_KEY} name limited.{zone} A; }}; }};\n"
            for zone in (ZONE, OTHER)
        )
        conf = d / "named.conf"
        conf.write_text(
            f'include "{d}/{KEY_NAME}.key";\n'
            f'include "{d}/{LIMITED_KEY}.key";\n'
            + "".join(f'include "{d}/{name}.key";\n' for name in self.writers)
            + f'options {{ directory "{d}"; pid-file "{d}/named.pid";\n'
            f'  session-keyfile "{d}/session.key";\n'
            f"  listen-on port {self.port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};\n"
            "  recursion no; dnssec-validation no; allow-transfer { none; };\n"
            "  notify no; };\n"
            "controls { };\n" + zones
        )
        checkconf, checkzone = find_tool("named-checkconf"), find_tool("named-checkzone")
        assert checkconf and checkzone
        subprocess.run([checkconf, str(conf)], check=True, capture_output=True)
        for zone in (ZONE, OTHER):
            subprocess.run(
                [checkzone, zone, str(d / f"{zone}.zone")], check=True, capture_output=True
            )
        return conf

    def start(self) -> BindServer:
        conf = self._write_config()
        named = find_tool("named")
        assert named
        # -g: foreground, logs on stderr; -n 1: one worker thread is plenty for the tests.
        # As root named keeps running as root (no -u needed); as a user it runs as that user.
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [named, "-g", "-n", "1", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_until(self._answers_soa, 20, "named to answer SOA")
        except AssertionError:
            self.stop()
            raise AssertionError(f"named did not start:\n{self.log.read_text()[-3000:]}") from None
        return self

    def _answers_soa(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"named exited {self.proc.returncode}")
        query = dns.message.make_query(ZONE, "SOA")
        response = dns.query.udp(query, "127.0.0.1", timeout=0.5, port=self.port)
        return response.rcode() == dns.rcode.NOERROR and bool(response.answer)

    def stop(self) -> None:
        """SIGTERM named by the pid it wrote (the same as our child with -g), then reap it."""
        if self.proc is None:
            return
        pid = self.proc.pid
        with contextlib.suppress(FileNotFoundError, ValueError):
            pid = int((self.dir / "named.pid").read_text().strip())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    # -- helpers for tests: the zone as a human or another tool would change and see it ----------

    def keyring(
        self, secret: str | None = None, name: str = KEY_NAME
    ) -> dict[dns.name.Name, dns.tsig.Key]:
        key_name = dns.name.from_text(name)
        return {key_name: dns.tsig.Key(key_name, secret or self.secret, dns.tsig.HMAC_SHA256)}

    def update(self, zone: str = ZONE) -> dns.update.UpdateMessage:
        """A signed UPDATE to fill in and `send`: a hand edit behind the provider's back."""
        return dns.update.UpdateMessage(
            dns.name.from_text(zone), keyring=self.keyring(), keyname=dns.name.from_text(KEY_NAME)
        )

    def send(self, message: dns.message.Message) -> dns.message.Message:
        return dns.query.tcp(message, "127.0.0.1", timeout=5, port=self.port)

    def values(self, name: str, rdtype: str = "A") -> list[str]:
        query = dns.message.make_query(name, rdtype)
        response = dns.query.tcp(query, "127.0.0.1", timeout=5, port=self.port)
        rrset = response.get_rrset(
            response.answer,
            dns.name.from_text(name),
            dns.rdataclass.IN,
            dns.rdatatype.from_text(rdtype),
        )
        return sorted(rd.to_text() for rd in rrset) if rrset else []

    def updates(self) -> dict[str, int]:
        """UPDATE messages named received so far, per TSIG key, as its log tells them (every
        UPDATE is logged, applied, no-op or refused alike). Lines of one message are
        consecutive and share the client and source port."""
        counts: dict[str, int] = {}
        last: tuple[str, ...] | None = None
        for line in self.log.read_text(errors="replace").splitlines():
            match = _UPDATE_LINE.search(line)
            if match is None:
                continue
            if match.groups() != last:
                counts[match.group(3)] = counts.get(match.group(3), 0) + 1
            last = match.groups()
        return counts

    def transfers(self, zone: str = ZONE) -> tuple[int, int]:
        """Zone transfers of `zone` named started and denied so far, as its log tells them."""
        text = self.log.read_text(errors="replace")
        started = text.count(f"transfer of '{zone}/IN': AXFR started")
        return started, text.count(f"zone transfer '{zone}/AXFR/IN' denied")

    def serial(self, zone: str = ZONE) -> int:
        query = dns.message.make_query(zone, "SOA")
        response = dns.query.tcp(query, "127.0.0.1", timeout=5, port=self.port)
        return int(response.answer[0][0].serial)


FAST_RETRY = RetryConfig(attempts=3, initial=0.01, max_delay=0.05, deadline=10)


def rfc2136_provider(bind: BindServer, **overrides: Any) -> Rfc2136Provider:
    """The rfc2136 provider on `bind` with the main key and fast retries (settings overridden
    by keyword); `errors` collects its on_error kinds. It is told a third zone, unknown.test,
    that the server does not serve."""
    settings: dict[str, Any] = {
        "name": "bind",
        "server": "127.0.0.1",
        "port": bind.port,
        "tsig": TsigConfig(KEY_NAME, Secret(bind.secret)),
        "timeout": 3.0,
        "retry": FAST_RETRY,
        **overrides,
    }
    zones = [ZONE, OTHER, "unknown.test"]
    provider = Rfc2136Provider(Rfc2136ProviderConfig(**settings), zones)
    provider.errors = []  # type: ignore[attr-defined]
    provider.on_error = provider.errors.append  # type: ignore[attr-defined]
    return provider
