"""The HTTP probe over TLS against real local servers with a private CA (trustme)."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from probe_targets import Target
from raw_servers import RawServer, TlsFiles, silent, tls_files

from failover.config.types import HttpProbeConfig
from failover.model import ProbeResult
from failover.probes import http
from failover.probes.base import ProbeContext
from failover.probes.scheduler import ProbeJob, ProbeScheduler

Serve = Callable[..., Awaitable[Target]]


def spec(url: str, **kw: Any) -> HttpProbeConfig:
    return HttpProbeConfig(**{"name": "p", "url": url, "interval": 1.0, "timeout": 1.0} | kw)


async def run(url: str, ctx: ProbeContext, **kw: Any) -> ProbeResult:
    async with asyncio.timeout(10):
        return await http.probe(spec(url, **kw), ctx.for_run())


@pytest.fixture
def files(tmp_path: Path) -> TlsFiles:
    return tls_files(tmp_path)


@pytest.fixture
async def shop(serve: Serve, files: TlsFiles) -> Target:
    """An HTTPS target whose certificate (from the private CA) names only `shop.test`."""
    return await serve(files.server_context("shop.test"))


async def test_private_ca_fails_verification_by_default(shop: Target, ctx: ProbeContext) -> None:
    result = await run(f"{shop.url}/ok", ctx, host="shop.test")
    assert not result.ok
    assert result.reason.startswith("certificate verify failed: "), result.reason
    assert shop.methods == []
    assert {"resolve", "connect", "tls", "total"} <= set(result.timings)


async def test_passes_with_ca_file(shop: Target, files: TlsFiles, ctx: ProbeContext) -> None:
    result = await run(f"{shop.url}/ok", ctx, host="shop.test", ca_file=files.ca)
    assert result.ok, result.reason
    assert shop.hosts == ["shop.test"]
    assert set(result.timings) == {"resolve", "connect", "tls", "first_byte", "transfer", "total"}
    assert result.timings["tls"] > 0
    assert result.detail["tls_version"] == "TLSv1.3"
    assert result.detail["http_version"] == "1.1"
    expiry = result.detail["cert_expiry"]
    assert isinstance(expiry, int) and expiry > time.time()


async def test_without_verification(shop: Target, ctx: ProbeContext) -> None:
    result = await run(f"{shop.url}/ok", ctx, verify_tls=False)
    assert result.ok, result.reason
    assert result.detail["tls_version"] == "TLSv1.3"
    assert "cert_expiry" not in result.detail  # only known from a verified chain


async def test_each_https_probe_opens_a_fresh_connection(shop: Target, ctx: ProbeContext) -> None:
    for _ in range(3):
        assert (await run(f"{shop.url}/ok", ctx, verify_tls=False)).ok
    assert len(set(shop.peers)) == 3  # a new TCP connection and TLS handshake every run


async def test_host_drives_sni_and_the_name_checked(
    shop: Target, files: TlsFiles, ctx: ProbeContext
) -> None:
    url = f"{shop.url}/ok"
    wrong = await run(url, ctx, host="other.test", ca_file=files.ca)
    assert not wrong.ok
    assert wrong.reason == "hostname mismatch: certificate is not valid for 'other.test'"
    by_address = await run(url, ctx, ca_file=files.ca)  # checked against 127.0.0.1
    assert by_address.reason == "hostname mismatch: certificate is not valid for '127.0.0.1'"
    # tls_server_name overrides the name used for SNI and verification, not the Host header.
    overridden = await run(
        url, ctx, host="www.example", tls_server_name="shop.test", ca_file=files.ca
    )
    assert overridden.ok, overridden.reason
    assert shop.hosts == ["www.example"]


async def test_client_certificate(serve: Serve, files: TlsFiles, ctx: ProbeContext) -> None:
    mtls = await serve(files.server_context(require_client_cert=True))
    url, common = f"{mtls.url}/ok", {"host": "shop.test", "ca_file": files.ca}
    with_cert = await run(url, ctx, client_cert=files.client_cert, client_key=files.client_key)
    assert not with_cert.ok  # without ca_file: the private CA is not trusted
    with_cert = await run(
        url, ctx, client_cert=files.client_cert, client_key=files.client_key, **common
    )
    assert with_cert.ok, with_cert.reason
    bundled = await run(url, ctx, client_cert=files.client_bundle, **common)
    assert bundled.ok, bundled.reason
    without = await run(url, ctx, **common)
    assert not without.ok
    assert len(mtls.methods) == 2  # the request without a certificate never reached the app


async def test_tls_min_version(serve: Serve, files: TlsFiles, ctx: ProbeContext) -> None:
    capped = await serve(files.server_context(max_version=ssl.TLSVersion.TLSv1_2))
    url, common = f"{capped.url}/ok", {"host": "shop.test", "ca_file": files.ca}
    allowed = await run(url, ctx, tls_min_version="1.2", **common)
    assert allowed.ok, allowed.reason
    assert allowed.detail["tls_version"] == "TLSv1.2"
    refused = await run(url, ctx, tls_min_version="1.3", **common)
    assert not refused.ok
    assert "tls" in refused.reason, refused.reason
    assert "first_byte" not in refused.timings
    assert capped.methods == ["GET"]


async def test_https_to_a_plain_http_port(target: Target, ctx: ProbeContext) -> None:
    result = await run(target.url.replace("http://", "https://") + "/ok", ctx)
    assert not result.ok
    assert result.reason == "tls handshake failed: wrong version number"


async def test_timeout_in_the_handshake_names_tls() -> None:
    # The server accepts TCP and reads the ClientHello, but never answers it.
    async with RawServer(silent) as server:
        job = ProbeJob("shop", "primary", spec(f"https://127.0.0.1:{server.port}/", timeout=0.3))
        [(_, result)] = await ProbeScheduler([job], lambda *_: None).run_once()
    assert not result.ok
    assert result.reason == "timeout after 300ms in tls"
    assert {"resolve", "connect", "tls"} <= set(result.timings)
    assert result.timings["tls"] > 0.1


async def test_one_tls_context_per_settings(
    shop: Target, files: TlsFiles, ctx: ProbeContext
) -> None:
    settings = http.tls_settings(spec(shop.url, ca_file=files.ca))
    results = await asyncio.gather(
        *(run(f"{shop.url}/ok", ctx, host="shop.test", ca_file=files.ca) for _ in range(5))
    )
    assert all(r.ok for r in results)
    assert await ctx.tls.get(settings) is await ctx.tls.get(settings)


async def test_unreadable_ca_file_at_run_time(
    shop: Target, tmp_path: Path, ctx: ProbeContext
) -> None:
    result = await run(f"{shop.url}/ok", ctx, host="shop.test", ca_file=tmp_path / "gone.pem")
    assert not result.ok
    assert result.reason.startswith(f"cannot read {tmp_path / 'gone.pem'}"), result.reason
