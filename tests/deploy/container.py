"""What the image and the compose lab declare, read from their files for the tests.

A small Dockerfile reader (instructions in order, continuations joined), Docker's .dockerignore
rule, and loaders for deploy/docker-compose.yml and the lab's failover configs.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.support import REPO

DEPLOY = REPO / "deploy"
LAB = DEPLOY / "compose"


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        instruction, _, rest = (current + line).partition(" ")
        out.append((instruction.upper(), rest.strip()))
        current = ""
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last_from = max(i for i, (instruction, _) in enumerate(steps) if instruction == "FROM")
    return steps[last_from:]


def one(instruction: str) -> str:
    found = [rest for name, rest in final_stage() if name == instruction]
    assert len(found) == 1, f"the final stage needs exactly one {instruction}: {found}"
    return found[0]


def exec_form(text: str) -> list[str]:
    """JSON (exec) form only: a shell form would run under /bin/sh as PID 1, which does not
    pass SIGTERM on to failover, so `docker stop` would kill it after the grace period."""
    value = json.loads(text)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), text
    return value


def image_command() -> list[str]:
    return exec_form(one("ENTRYPOINT")) + exec_form(one("CMD"))


def healthcheck_command() -> list[str]:
    options, marker, command = one("HEALTHCHECK").partition("CMD ")
    assert marker, "HEALTHCHECK needs a command"
    assert "--timeout=" in options and "--start-period=" in options, options
    return exec_form(command)


def image_uid_gid() -> tuple[int, int]:
    user = one("USER")
    assert re.fullmatch(r"\d+:\d+", user), f"USER {user}: numeric UID:GID, so runAsNonRoot works"
    uid, gid = (int(part) for part in user.split(":"))
    return uid, gid


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (excluded, regex): `*` stays within a path segment, `**` crosses them."""
    rules = []
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        assert not set(pattern) & set("[]\\"), f"{line}: the test's matcher handles * ** ? only"
        regex = "".join(
            {"**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part))
            for part in re.split(r"(\*\*|\*|\?)", pattern)
        )
        rules.append((not negate, re.compile(regex)))
    return rules


def in_build_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for exclude, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = exclude
    return not excluded


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return data


def lab_config(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((LAB / name).read_text())
    return data


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host source (relative to deploy/) of a service's short-form volumes."""
    out = {}
    for entry in service.get("volumes", []):
        source, target, *_ = entry.split(":")
        out[target] = source
    return out


def failover_services(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in spec["services"].items() if name.startswith("failover-")}
