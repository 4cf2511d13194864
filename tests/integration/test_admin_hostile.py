"""Hostile input to the admin API: always a 4xx JSON error, never a 500 or a traceback.

Issue 10 finding 7: `limit=99999999999999999999`, `limit=²`, deeply nested JSON and a non-ASCII
`Authorization` header gave a 500 with a traceback. A real daemon listens on TCP with a token;
requests go out as raw bytes, so headers and bodies can be anything a client can send. The
last-resort middleware (an unexpected exception becomes a 500 JSON, logged once) is checked
in-process with an engine whose status raises.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from failover.admin import AdminApi
from tests.support import Lab, admin_listen, free_port

TOKEN = "s3cret-token"


class Admin:
    def __init__(self, port: int) -> None:
        self.port = port

    def raw(self, head: bytes, body: bytes = b"") -> tuple[int, Any]:
        """Send one request as bytes; (status, parsed JSON body or the raw text)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as conn:
            conn.sendall(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
            conn.sendall(body)
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        header, _, payload = data.partition(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1])
        try:
            return status, json.loads(payload)
        except ValueError:
            return status, payload.decode(errors="replace")

    def get(self, target: bytes, auth: bytes = b"Bearer " + TOKEN.encode()) -> tuple[int, Any]:
        return self.raw(
            b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth + b"\r\n"
        )

    def post(
        self, path: bytes, body: bytes, content_type: bytes = b"application/json"
    ) -> tuple[int, Any]:
        head = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        head += TOKEN.encode() + b"\r\nContent-Type: " + content_type + b"\r\n"
        return self.raw(head, body)


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Admin, Lab]]:
    workdir = tmp_path_factory.mktemp("hostile")
    admin_port = free_port()
    addresses = ("127.0.0.71", "127.0.0.72")
    admin_extra = admin_listen(workdir, admin_port, TOKEN)
    with Lab(workdir, addresses=addresses, admin_extra=admin_extra) as lab:
        lab.start()
        yield Admin(admin_port), lab
    log = lab.log()
    assert "Traceback" not in log, log


def _is_client_error(status: int, body: Any) -> None:
    assert 400 <= status < 500, (status, body)
    assert isinstance(body, dict) and body.get("error") and body.get("message"), body


@pytest.mark.parametrize(
    "query",
    [
        b"limit=99999999999999999999",
        b"limit=%C2%B2",  # "²": a digit to str.isdigit, not to int()
        b"limit=%D9%A3",  # Arabic-Indic three
        b"limit=0",
        b"limit=-5",
        b"limit=1e3",
        b"limit=",
        b"limit=100001",
    ],
)
def test_history_limit(admin: tuple[Admin, Lab], query: bytes) -> None:
    status, body = admin[0].get(b"/v1/history?" + query)
    _is_client_error(status, body)
    assert "limit" in body["message"]


def test_history_limit_in_range_still_works(admin: tuple[Admin, Lab]) -> None:
    status, body = admin[0].get(b"/v1/history?limit=100000")
    assert status == 200 and isinstance(body, list)


@pytest.mark.parametrize(
    "auth",
    [
        b"Bearer \xc3\xa9",
        b"Bearer \xff\xfe",
        b"\xe2\x82\xac",
        b"Bearer",
        b"",
        b"bearer " + b"x" * 4000,
    ],
)
def test_authorization_header(admin: tuple[Admin, Lab], auth: bytes) -> None:
    status, body = admin[0].get(b"/v1/status", auth)
    assert status == 401, (status, body)
    _is_client_error(status, body)


PROMOTE = b"/v1/services/shop/promote"


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 30000 + b"]" * 30000,  # nested beyond the parser's recursion limit
        b'{"a":' * 20000 + b"1" + b"}" * 20000,
        b"9" * 5000,  # an integer too long to convert
        b"\xff\xfe{}",  # not UTF-8
        b"{not json",
        b"[]",
        b"null",
        b'"target"',
        b'{"target": 5, "reason": "x"}',
        b'{"target": "secondary"}',
        b'{"target": "secondary", "reason": "x", "force": "yes"}',
        b'{"target": "secondary", "reason": "\\ud800", "dry_run": true}',  # a lone surrogate
        b'{"target": ["secondary"], "reason": "x"}',
        b'{"target": "nowhere", "reason": "x", "dry_run": true}',
    ],
)
def test_promote_bodies(admin: tuple[Admin, Lab], payload: bytes) -> None:
    _is_client_error(*admin[0].post(PROMOTE, payload))


@pytest.mark.parametrize(
    "payload",
    [
        b'{"hold": ' + b"9" * 400 + b', "dry_run": true}',  # an int beyond any float
        b'{"hold": true, "dry_run": true}',
        b'{"hold": [1], "dry_run": true}',
        b'{"hold": "forever", "dry_run": true}',
        b'{"to": 5, "dry_run": true}',
        b'{"to": "\\udfff", "dry_run": true}',
        b'{"actor": {"name": "x"}}',
    ],
)
def test_drill_bodies(admin: tuple[Admin, Lab], payload: bytes) -> None:
    _is_client_error(*admin[0].post(b"/v1/services/shop/drill", payload))


@pytest.mark.parametrize(
    "path", [b"/v1/services/%ff%fe/pause", b"/v1/services/shop/explode", b"/v1/nowhere"]
)
def test_odd_paths(admin: tuple[Admin, Lab], path: bytes) -> None:
    _is_client_error(*admin[0].post(path, b"{}"))


def test_a_bogus_charset_is_ignored_not_fatal(admin: tuple[Admin, Lab]) -> None:
    body = b'{"target": "secondary", "reason": "x", "dry_run": true}'
    status, data = admin[0].post(PROMOTE, body, b"application/json; charset=nope")
    assert status < 500, data


def test_malformed_http_is_a_400_and_one_log_line(admin: tuple[Admin, Lab]) -> None:
    """Framing errors never reach a handler: aiohttp answers 400; the log has no traceback
    (checked for the whole module when the daemon stops)."""
    status, _ = admin[0].post(PROMOTE, b"{}", b"application/json\r\nContent-Type: text/plain")
    assert status == 400
    assert "Duplicate 'Content-Type'" in admin[1].log()


class _BrokenEngine:
    def status(self) -> dict[str, Any]:
        raise RuntimeError("a bug")


async def test_an_unexpected_exception_is_a_500_json_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = AdminApi(_BrokenEngine(), reload=None).app()  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        with caplog.at_level(logging.ERROR):
            resp = await client.get("/v1/status")
            body = await resp.json()
    assert resp.status == 500
    assert body == {"error": "internal_error", "message": body["message"]}
    assert "Traceback" not in json.dumps(body) and "a bug" not in json.dumps(body)
    logged = [r for r in caplog.records if r.exc_info and "/v1/status" in r.getMessage()]
    assert len(logged) == 1
