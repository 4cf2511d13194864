"""YAML → typed, frozen `Config`: reading the file, `${…}` secrets, the top level.

Strict on purpose: unknown keys are refused and every error names its path and the fix, and all
errors of a file are reported at once, so an operator fixes a file in one pass and a SIGHUP with
a broken file is rejected before anything is swapped. Each section is parsed by its own module
(`providers`, `services`, `notifications`…); this one reads the file and assembles them.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from failover import heap
from failover.config.common import opt_plain, positive, valid_name
from failover.config.coordination import parse_coordination
from failover.config.notifications import parse_notifications
from failover.config.parse import (
    BROKEN,
    PLACEHOLDER,
    ConfigError,
    Interpolated,
    Invalid,
    Section,
    boolean,
    hostport,
    join,
    kind,
    path_in,
    plain,
    show,
)
from failover.config.providers import parse_providers
from failover.config.services import parse_canaries, parse_defaults, parse_services
from failover.config.types import AdminConfig, Config, HostPort, InstanceConfig, MetricsConfig

__all__ = ["ConfigError", "load_config", "parse_config"]


# --- YAML -----------------------------------------------------------------------------------------


# libyaml's parser when PyYAML was built with it: the pure-Python one spends ~10 s on a
# 10,000-service file (the constructor, where duplicates are noted, is the same Python code).
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """SafeLoader that notes duplicate keys instead of silently keeping the last one."""

    duplicates: list[tuple[int, str]]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                ident = (key_node.tag, key_node.value)
                if ident in seen:
                    self.duplicates.append((key_node.start_mark.line + 1, key_node.value))
                seen.add(ident)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep)
        return mapping


def load_yaml(text: str, label: str) -> tuple[object, list[str]]:
    """Parse YAML; syntax errors raise, duplicate keys come back as errors to report with others.

    The messages never include YAML's source snippet: the line may hold a secret.
    """
    loader = _Loader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{label}:{mark.line + 1}:{mark.column + 1}" if mark else label
        problem = exc.problem or exc.context or "syntax error"
        fix = "check indentation, quoting and colons"
        raise ConfigError([f"{where}: invalid YAML: {problem}; {fix}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{label}: invalid YAML: {exc}; fix the file"]) from None
    finally:
        loader.dispose()
    errors = [
        f"{label}:{line}: duplicate key '{key}'; each key may appear only once in a mapping"
        for line, key in loader.duplicates
    ]
    return data, errors


# --- interpolation --------------------------------------------------------------------------------

_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def interpolate(
    node: object,
    path: str,
    env: Mapping[str, str],
    base_dir: Path | None,
    errors: list[str],
    missing: list[str] | None = None,
) -> object:
    """Resolve `${ENV}` and `${file:/path}` in every string value (not keys); `$${` is a literal.

    Failures are reported with the path and the variable or file, and the value becomes BROKEN.
    With `missing` (check-config on a machine without the secrets), an unavailable variable or
    file is listed there instead and replaced by a placeholder.
    """
    if isinstance(node, dict):
        return {
            k: interpolate(v, join(path, k), env, base_dir, errors, missing)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [
            interpolate(v, f"{path}[{i}]", env, base_dir, errors, missing)
            for i, v in enumerate(node)
        ]
    if not isinstance(node, str) or "${" not in node:
        return node
    parts: list[str] = []
    origins: list[str] = []
    ok = True
    pos = 0
    for match in _TOKEN.finditer(node):
        parts.append(node[pos : match.start()])
        pos = match.end()
        ref = match.group(1)
        if match.group(0) == "$${":
            parts.append("${")
        elif ref is None:
            errors.append(f"{path}: unclosed '${{'; write ${{ENV_VAR}}, ${{file:/path}} or $${{")
            ok = False
        elif ref.startswith("file:"):
            problems: list[str] = []
            value = _read_secret_file(ref[5:], path, base_dir, problems)
            if value is None and missing is not None:
                missing.append(f"{path}: ${{{ref}}}")
                value = PLACEHOLDER
            errors.extend(problems if value is None else [])
            ok = ok and value is not None
            parts.append(value or "")
            origins.append(f"${{{ref}}}")
        elif _ENV_NAME.fullmatch(ref):
            if ref not in env and missing is not None:
                missing.append(f"{path}: ${{{ref}}}")
                parts.append(PLACEHOLDER)
                origins.append(f"${{{ref}}}")
            elif ref not in env:
                errors.append(
                    f"{path}: environment variable {ref} is not set; "
                    f"set it in the daemon's environment or remove ${{{ref}}}"
                )
                ok = False
            parts.append(env.get(ref, ""))
            origins.append(f"${{{ref}}}")
        else:
            errors.append(
                f"{path}: cannot interpolate ${{{ref}}}; "
                "write ${ENV_VAR}, ${file:/path}, or $${ for a literal '${'"
            )
            ok = False
    parts.append(node[pos:])
    if not ok:
        return BROKEN
    text = "".join(parts)
    return Interpolated(text, " and ".join(origins)) if origins else text


def _read_secret_file(name: str, path: str, base_dir: Path | None, errors: list[str]) -> str | None:
    file = Path(name)
    if base_dir is not None and not file.is_absolute():
        file = base_dir / file
    try:
        return file.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        errors.append(
            f"{path}: cannot read ${{file:{name}}}: {why}; "
            "the file must exist and be readable by the daemon"
        )
    except UnicodeDecodeError:
        errors.append(f"{path}: ${{file:{name}}} is not UTF-8 text; expected a text file")
    return None


# --- top level ------------------------------------------------------------------------------------


def _auto_or_boolean(value: object) -> bool | Literal["auto"]:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        return boolean(value)
    except Invalid:
        raise Invalid(f"expected true, false or auto, got {show(value)}") from None


def _instance(top: Section, base_dir: Path | None) -> InstanceConfig:
    sec = top.section("instance")
    name = sec.opt("name", valid_name)
    instance = InstanceConfig(
        name=plain(name) if name is not None else socket.gethostname(),
        location=opt_plain(sec.opt("location", valid_name)),
        state_dir=sec.get("state_dir", path_in(base_dir), Path("/var/lib/failover")),
        resync_interval=sec.get("resync_interval", positive, 30.0),
        shutdown_timeout=sec.get("shutdown_timeout", positive, 30.0),
        probe_process=sec.get("probe_process", _auto_or_boolean, "auto"),
    )
    sec.done()
    return instance


def _admin(top: Section, base_dir: Path | None) -> AdminConfig:
    sec = top.section("admin")
    admin = AdminConfig(
        socket=sec.get("socket", path_in(base_dir), Path("/run/failover/admin.sock")),
        listen=sec.opt("listen", hostport()),
        token_file=sec.opt("token_file", path_in(base_dir)),
    )
    if admin.listen is not None and admin.token_file is None and not sec.failed("token_file"):
        sec.error(
            "token_file",
            "missing; admin.listen (TCP) requires a token_file holding the "
            "bearer token clients must present",
        )
    sec.done()
    return admin


def _metrics(top: Section) -> MetricsConfig:
    sec = top.section("metrics")
    raw = sec.raw("listen")
    listen: HostPort | None = None
    if not sec.present("listen") or (raw is not None and raw is not False):
        listen = sec.get("listen", hostport(allow_zero=True), HostPort("127.0.0.1", 9180))
    sec.done()
    return MetricsConfig(listen)


def parse_config(
    text: str,
    *,
    source: Path | None = None,
    env: Mapping[str, str] | None = None,
    missing_secrets: list[str] | None = None,
) -> Config:
    """Parse and validate a whole file; raise ConfigError listing every problem found."""
    env = os.environ if env is None else env
    label = str(source) if source is not None else "<config>"
    base_dir = source.absolute().parent if source is not None else None
    tree, errors = load_yaml(text, label)
    if tree is None:
        raise ConfigError([f"{label}: the file is empty; expected providers: and services:"])
    if not isinstance(tree, dict):
        raise ConfigError([f"{label}: expected a mapping at the top level, got {kind(tree)}"])
    tree = interpolate(tree, "", env, base_dir, errors, missing_secrets)
    top = Section(errors, tree, "")
    instance, admin, metrics = _instance(top, base_dir), _admin(top, base_dir), _metrics(top)
    providers, declared = parse_providers(top)
    defaults = parse_defaults(top)
    services = parse_services(top, defaults, declared, base_dir)
    canaries = parse_canaries(top, defaults, base_dir)
    notifications = parse_notifications(top)
    coordination = parse_coordination(top, base_dir)
    top.done()
    if errors:
        raise ConfigError(errors)
    source = source.absolute() if source is not None else None
    return Config(
        instance,
        admin,
        metrics,
        providers,
        services,
        source=source,
        notifications=notifications,
        canaries=canaries,
        coordination=coordination,
    )


def load_config(
    path: str | Path,
    env: Mapping[str, str] | None = None,
    *,
    missing_secrets: list[str] | None = None,
) -> Config:
    """Read and parse a config file; an unreadable file is a ConfigError, never a traceback."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [
                f"{source}: cannot read the configuration: {exc.strerror or exc}; check the path "
                "and its permissions"
            ]
        ) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{source}: not UTF-8 text; expected a YAML file"]) from None
    with heap.paused():  # thousands of long-lived objects: collecting meanwhile walks them
        return parse_config(text, source=source, env=env, missing_secrets=missing_secrets)
