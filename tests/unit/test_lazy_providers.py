"""A provider's SDK is imported only when a provider of its type is configured."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO


def imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True
    )
    return set(out.stdout.split())


def test_the_daemon_imports_no_cloud_sdk_until_one_is_configured() -> None:
    sdks = {"boto3", "botocore", "ovh", "hcloud", "cloudflare", "httpx"}
    loaded = imported_after("import failover.daemon, failover.cli")
    assert not sdks & loaded, sorted(sdks & loaded)


def test_each_sdk_comes_with_its_provider() -> None:
    loaded = imported_after("from failover.providers.registry import factory; factory('route53')")
    assert {"boto3", "botocore"} <= loaded and "ovh" not in loaded
    assert "ovh" in imported_after(
        "from failover.providers.registry import factory; factory('ovh')"
    )
    loaded = imported_after("from failover.providers.registry import factory; factory('hetzner')")
    assert "hcloud" in loaded and not {"boto3", "ovh", "cloudflare"} & loaded
    loaded = imported_after(
        "from failover.providers.registry import factory; factory('cloudflare')"
    )
    assert "cloudflare" in loaded and not {"boto3", "ovh", "hcloud"} & loaded
