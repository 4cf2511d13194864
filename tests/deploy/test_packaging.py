"""Packaging facts users and registries read: the licence, the project's metadata, the image's
OCI labels, and the aiohttp range the http probe's private connector hook is known to work in."""

from __future__ import annotations

import inspect
import re
import tomllib

import aiohttp

from failover.probes.http import ProbeConnector
from tests.support import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def test_license_file_matches_the_declared_licence() -> None:
    text = (REPO / "LICENSE").read_text()
    assert PROJECT["license"] == "Apache-2.0"
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in DOCKERFILE
    assert "LICENSE" in PROJECT["license-files"]


def test_project_urls_and_classifiers() -> None:
    assert {"Homepage", "Source", "Documentation", "Issues"} <= set(PROJECT["urls"])
    classifiers = PROJECT["classifiers"]
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert "Topic :: Internet :: Name Service (DNS)" in classifiers
    # an SPDX `license` excludes licence classifiers (PEP 639)
    assert not any(c.startswith("License ::") for c in classifiers)


def test_oci_labels_name_the_source_and_the_version() -> None:
    version = re.search(r"^ARG VERSION=(\S+)$", DOCKERFILE, re.M)
    source = re.search(r"^ARG SOURCE=(\S+)$", DOCKERFILE, re.M)
    assert version and version.group(1) == PROJECT["version"]
    assert source and source.group(1) == PROJECT["urls"]["Source"]
    assert 'org.opencontainers.image.version="${VERSION}"' in DOCKERFILE
    assert 'org.opencontainers.image.source="${SOURCE}"' in DOCKERFILE


def test_aiohttp_is_pinned_below_4_while_the_probe_uses_its_private_hook() -> None:
    pins = [d for d in PROJECT["dependencies"] if d.startswith("aiohttp")]
    assert pins == ["aiohttp>=3.10,<4"]
    assert int(aiohttp.__version__.split(".")[0]) == 3
    hook = getattr(aiohttp.BaseConnector, "_create_connection", None)
    assert hook is not None, "aiohttp.BaseConnector._create_connection is gone"
    assert list(inspect.signature(hook).parameters) == ["self", "req", "traces", "timeout"]
    assert list(inspect.signature(ProbeConnector._create_connection).parameters) == [
        "self",
        "req",
        "traces",
        "timeout",
    ]
    # the hook is what BaseConnector.connect calls: the override is really used
    assert "self._create_connection(" in inspect.getsource(aiohttp.BaseConnector.connect)
