"""A provider from a third-party package: installed with pip into a venv of its own, listed by
`failover providers` and `check-config`, and used by a running daemon for a failover.

The package is tests/providers/plugin_example (`type: filedns`, records in a JSON file). The
venv is made offline: `python -m venv --without-pip`, a `.pth` line giving it this venv's
site-packages (pip, aiohttp…), and `pip install --no-index` of the package (its in-tree build
backend needs nothing). failover itself runs from this checkout (PYTHONPATH), as in
development: its built-in providers then come from the in-package table.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover.config.types import PluginProviderConfig, Secret
from failover.testkit.providers import run_contract_sync
from tests.support import REPO, Lab, Peer

EXAMPLE = REPO / "tests" / "providers" / "plugin_example"
TOKEN = "filedns-tok-5e4d3c2b1a09f8e7d6c5b4a3"
PRIMARY, SECONDARY = "127.0.0.71", "127.0.0.72"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A venv holding failover-filedns 0.3.1, installed by pip; its python's path."""
    root = tmp_path_factory.mktemp("plugin")
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root / "venv")],
        check=True,
        capture_output=True,
    )
    python = str(root / "venv" / "bin" / "python")
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "shared.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    package = root / "failover-filedns"
    shutil.copytree(EXAMPLE, package, ignore=shutil.ignore_patterns("__pycache__"))
    installed = subprocess.run(
        [python, "-m", "pip", "install", "--no-index", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", str(package)],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    yield python


def failover(python: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [python, "-m", "failover", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_plugin_is_listed_with_its_package_and_version(venv: str) -> None:
    listed = {p["type"]: p for p in json.loads(failover(venv, "providers", "--json"))}
    assert listed["filedns"] == {
        "type": "filedns",
        "module": "failover_filedns",
        "entry_point": "failover_filedns",
        "package": "failover-filedns",
        "version": "0.3.1",
        "builtin": False,
        "shadowed_by": None,
    }
    assert listed["hetzner"]["builtin"] and listed["route53"]["package"] == "failover"
    assert listed["cloudflare"]["builtin"] and listed["cloudflare"]["shadowed_by"] is None
    assert listed["cloudflare"]["module"] == "failover.providers.cloudflare"
    table = failover(venv, "providers")
    assert any(line.split()[:4] == ["filedns", "failover_filedns", "failover-filedns", "0.3.1"]
               for line in table.splitlines())  # fmt: skip
    # this interpreter does not have the package: no such type here
    here = failover(sys.executable, "providers")
    assert "filedns" not in here
    assert any(line.split()[:2] == ["cloudflare", "failover.providers.cloudflare"]
               for line in here.splitlines())  # fmt: skip


def test_a_daemon_fails_over_through_the_plugin(venv: str, tmp_path: Path) -> None:
    records = tmp_path / "records.json"

    def read(name: str) -> list[str]:
        data = json.loads(records.read_text()) if records.exists() else {}
        return sorted(data.get(f"{name}/A", [0, []])[1])

    peer = Peer(
        "files",
        f'{{type: filedns, path: "{records}", token: "${{FAILOVER_TEST_FILEDNS}}",'
        " location: plugin-land, verify: false}",
        read,
        secrets=(TOKEN,),
        env={"FAILOVER_TEST_FILEDNS": TOKEN},
    )
    with Lab(tmp_path, peer, addresses=(PRIMARY, SECONDARY), python=venv) as lab:
        summary = failover(venv, "check-config", "-c", str(lab.config), env=peer.env)
        line = next(x for x in summary.splitlines() if x.strip().startswith("files:"))
        assert "filedns (plugin failover-filedns 0.3.1) in plugin-land" in line
        assert "token ***" in line and TOKEN not in summary
        lab.start()
        lab.wait_answer(PRIMARY)
        lab.primary.stop()
        lab.wait_answer(SECONDARY)
        shop = lab.wait_service(lambda s: s["active"] == "secondary", "the switch")
        assert shop["records"][0]["provider"] == "files"
        assert lab.stop() == 0
    assert TOKEN not in lab.log()
    assert "Traceback" not in lab.log()


def test_the_plugin_passes_the_contract_test_kit(tmp_path: Path) -> None:
    """What a plugin's own test suite does: the shipped contract against its provider."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        from failover_filedns import create  # type: ignore[import-not-found]

        config = PluginProviderConfig(
            "files", "filedns", options={"path": str(tmp_path / "r.json"), "token": Secret("t")}
        )
        run_contract_sync(lambda: create(config, ["example.test"], None), "example.test")
    finally:
        sys.path.remove(str(EXAMPLE))
        sys.modules.pop("failover_filedns", None)


def test_a_bad_plugin_option_stops_the_daemon_with_a_configuration_error(
    venv: str, tmp_path: Path
) -> None:
    """The plugin judges its own options when the daemon opens it: exit 2, the provider and
    the problem named, no traceback."""
    peer = Peer("files", "{type: filedns, verify: false}", lambda name: [])
    with Lab(tmp_path, peer, python=venv) as lab:
        done = subprocess.run(
            [venv, "-m", "failover", "run", "-c", str(lab.config)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "providers.files: filedns files: `path` (a file) is required" in done.stderr
    assert "Traceback" not in done.stderr
