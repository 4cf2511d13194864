"""The reference in docs/ stays true to the code: every key the config parser reads is
documented where it belongs, every metric a running daemon exports is listed, and nothing
the project ships points users at files they do not have."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from failover.config import parse
from failover.config.loader import load_config
from tests.support import REPO, Lab

DOCS = REPO / "docs"


def documented_keys() -> dict[str, set[str]]:
    """Heading path (`services.NAME.records[]`…) -> the keys in the first column below it."""
    sections: dict[str, set[str]] = {}
    current: list[str] = []
    for line in (DOCS / "configuration.md").read_text().splitlines():
        if line.startswith("## "):
            current = re.findall(r"`([^`]+)`", line)
            for path in current:
                sections.setdefault(path, set())
        elif line.startswith("| `") and current:
            key = line.split("`")[1]
            for path in current:
                sections[path].add(key)
    return sections


def parsed_keys(monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, str]]:
    """(place, key) for every key the parser asks for while reading the shipped configs."""
    seen: set[tuple[str, str]] = set()
    original = parse.Section.raw

    def raw(self: parse.Section, key: str) -> object:
        place = re.sub(r"\[\d+\]", "[]", self.path)
        place = re.sub(r"^(services|providers)\.[^.\[]+", r"\1.NAME", place)
        seen.add((place or "(top level)", key))
        return original(self, key)

    monkeypatch.setattr(parse.Section, "raw", raw)
    for name in ("failover.example.yaml", "lab.yaml"):
        load_config(REPO / "config" / name, missing_secrets=[])
    return seen


def test_every_config_key_the_parser_reads_is_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    sections = documented_keys()
    keys = parsed_keys(monkeypatch)
    assert len(keys) > 100  # the shipped configs exercise every section and type
    missing = sorted(f"{place}: {key}" for place, key in keys if key not in sections.get(place, ()))
    assert not missing, "undocumented in docs/configuration.md:\n" + "\n".join(missing)


def test_every_exported_metric_is_listed(tmp_path: Path) -> None:
    with Lab(tmp_path, addresses=("127.0.0.93", "127.0.0.94")) as lab:
        lab.start()
        text = lab.metrics()
    names = {
        line.split()[2]
        for line in text.splitlines()
        if line.startswith("# TYPE failover_") and not line.split()[2].endswith("_created")
    }
    assert len(names) > 20
    listed = set(re.findall(r"^\| `(failover_\w+)`", (DOCS / "metrics.md").read_text(), re.M))
    missing = sorted(n for n in names if n not in listed and n + "_total" not in listed)
    assert not missing, f"not in docs/metrics.md: {missing}"


def test_nothing_shipped_points_outside_the_repository() -> None:
    shipped = [REPO / "README.md", REPO / "Dockerfile", *DOCS.glob("*.md")]
    shipped += [*(REPO / "config").glob("*.yaml"), *(REPO / "deploy").rglob("*.y*ml")]
    # the code and the tests ship too: their comments name the project's own documents
    shipped += [
        path
        for folder in ("failover", "tests", "bench", "scripts")
        for path in (REPO / folder).rglob("*.py")
        if path != Path(__file__)
    ]
    design = ("shared/design", "SPEC.md", "SPEC §", "HA.md", "PROVIDERS.md", "ARCHITECTURE.md")
    for path in shipped:
        text = path.read_text()
        assert not [name for name in design if name in text], path
    for page in ("commands.md", "configuration.md", "api.md", "metrics.md"):
        assert f"docs/{page}" in (REPO / "README.md").read_text()
