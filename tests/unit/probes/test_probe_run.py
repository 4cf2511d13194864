"""ProbeRun (per-run phases) and the shared TLS context cache."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from raw_servers import TlsFiles, tls_files

from failover import tls as tls_util
from failover.probes.base import ProbeRun
from failover.tls import TlsContextCache, TlsSettings, TlsSetupError, build_context


def test_phases_add_up() -> None:
    run = ProbeRun()
    run.start("resolve")
    time.sleep(0.01)
    run.enter("connect")
    assert run.phase == "connect"
    run.enter("resolve")  # entered again (a redirect): durations add up
    time.sleep(0.01)
    snapshot = run.snapshot()
    assert snapshot["resolve"] >= 0.02
    assert "connect" in snapshot and "total" in snapshot
    total = run.finish()
    assert run.phase is None
    assert run.timings["total"] == total >= run.timings["resolve"] + run.timings["connect"]


def test_start_resets() -> None:
    run = ProbeRun()
    run.start("a")
    run.detail["x"] = 1
    run.finish()
    run.start("b")
    assert run.timings == {} and run.detail == {} and run.phase == "b"


@pytest.fixture
def files(tmp_path: Path) -> TlsFiles:
    return tls_files(tmp_path)


async def test_cache_shares_one_build(files: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[TlsSettings] = []

    def counting(settings: TlsSettings) -> ssl.SSLContext:
        builds.append(settings)
        return build_context(settings)

    monkeypatch.setattr(tls_util, "build_context", counting)
    cache = TlsContextCache()
    settings = TlsSettings(ca_file=files.ca)
    contexts = await asyncio.gather(*(cache.get(settings) for _ in range(10)))
    assert len({id(c) for c in contexts}) == 1
    assert builds == [settings]
    other = await cache.get(TlsSettings(verify=False))
    assert other is not contexts[0]
    assert other.verify_mode == ssl.CERT_NONE


async def test_cache_follows_file_changes(
    files: TlsFiles, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tls_util, "RECHECK", 0.0)
    cache = TlsContextCache()
    settings = TlsSettings(ca_file=files.ca)
    first = await cache.get(settings)
    assert await cache.get(settings) is first  # unchanged file: same context
    trustme.CA().cert_pem.write_to_path(str(files.ca))  # a rotated CA
    second = await cache.get(settings)
    assert second is not first
    files.ca.unlink()  # gone (mid-replacement?): keep the last good context, say so
    with caplog.at_level(logging.WARNING):
        assert await cache.get(settings) is second
    assert "keeping the previous TLS context" in caplog.text
    with pytest.raises(TlsSetupError, match="cannot read"):
        await TlsContextCache().get(settings)


def test_build_context_settings(files: TlsFiles) -> None:
    context = build_context(TlsSettings(ca_file=files.ca, min_version="1.3"))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert len(context.get_ca_certs()) == 1  # only the given CA, not the system store
    build_context(TlsSettings(client_cert=files.client_cert, client_key=files.client_key))


def test_build_context_refuses_bad_files(files: TlsFiles, tmp_path: Path) -> None:
    with pytest.raises(TlsSetupError, match="cannot load ca_file"):
        build_context(TlsSettings(ca_file=files.client_key))
    with pytest.raises(TlsSetupError, match="cannot load client certificate"):
        build_context(TlsSettings(client_cert=files.client_cert))  # no key anywhere
    (tmp_path / "other").mkdir()
    other = tls_files(tmp_path / "other")
    with pytest.raises(TlsSetupError, match="cannot load client certificate"):
        build_context(TlsSettings(client_cert=files.client_cert, client_key=other.client_key))


def test_encrypted_key_is_refused_not_prompted(files: TlsFiles, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(files.client_key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TlsSetupError, match="encrypted"):
        build_context(TlsSettings(client_cert=files.client_cert, client_key=encrypted))
