"""etcd with authentication on (a one-member cluster of its own, auth tokens valid for one
idle second): the client authenticates, renews an expired token, never shows the password."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover.config.types import EtcdConfig, Secret
from failover.coord.etcd import EtcdCoordinator
from failover.coord.etcd_client import EtcdClient, EtcdError
from failover.store import Store
from tests.coord.conftest import eventually
from tests.coord.etcd_cluster import EtcdCluster

PASSWORD = "s3cret-Pa55-etcd"
PREFIX = "/failover-auth"


@pytest.fixture(scope="module")
def secured() -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(1, extra_args=("--auth-token-ttl", "1")).start()
    try:
        for args in (
            ("user", "add", "root:rootpw"),
            ("user", "add", f"failover:{PASSWORD}"),
            ("role", "add", "failover"),
            ("role", "grant-permission", "failover", "--prefix=true", "readwrite", f"{PREFIX}/"),
            ("user", "grant-role", "failover", "failover"),
            ("auth", "enable"),
        ):
            result = cluster.etcdctl(*args)
            assert result.returncode == 0, result.stderr
        cluster.user = "root:rootpw"
        yield cluster
    finally:
        cluster.close()


def coordinator(cluster: EtcdCluster, tmp_path: Path, password: str) -> EtcdCoordinator:
    """Requests at most every 2s (lease 6s): a token (1s, renewed by each use) expires between."""
    config = EtcdConfig(
        tuple(cluster.endpoints),
        prefix=PREFIX,
        lease_ttl=6,
        timeout=1.2,
        username="failover",
        password=Secret(password),
    )
    return EtcdCoordinator("fo-a", Store(tmp_path / "fo-a"), config)


async def test_a_user_leads_and_authenticates_again_when_its_token_expires(
    secured: EtcdCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="failover.coord")
    coord = coordinator(secured, tmp_path, PASSWORD)
    try:
        await coord.start()
        await eventually(coord.is_leader, what="leading with auth on")
        await asyncio.to_thread(coord.save_intents, {"shop": {"mode": "auto"}})
        await eventually(
            lambda: "auth token expired; authenticating again" in caplog.text,
            timeout=30,
            what="an expired token renewed",
        )
        await asyncio.to_thread(coord.save_intents, {"shop": {"mode": "paused"}})
        assert coord.is_leader()
        out = secured.etcdctl("get", f"{PREFIX}/intents/shop").stdout
        assert '{"mode":"paused"}' in out
    finally:
        await coord.aclose()
    assert PASSWORD not in caplog.text


async def test_a_wrong_password_is_named_but_not_shown(
    secured: EtcdCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "not-the-Pa55word"
    coord = coordinator(secured, tmp_path, wrong)
    try:
        await coord.start()
        condition = coord.condition()
        assert condition.startswith("no leader: etcd unreachable (etcd refused user 'failover'")
        assert "check coordination.etcd.username and password" in condition
        assert not coord.is_leader()
    finally:
        await coord.aclose()
    assert wrong not in caplog.text and wrong not in condition


async def test_without_credentials_etcd_refuses(secured: EtcdCluster) -> None:
    client = EtcdClient(secured.endpoints, timeout=0.6)
    await client.open()
    try:
        with pytest.raises(EtcdError, match="user name is empty"):
            await client.range(f"{PREFIX}/", prefix=True)
    finally:
        await client.aclose()
