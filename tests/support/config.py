"""The one configuration shape of the daemon tests, and the DNS provider (`Peer`) it writes to."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.net import TargetServer, dns_a, free_port

PROBE = "{interval: 200ms, timeout: 150ms}"
HEALTH = "{fall: 2, rise: 2}"
POLICY = "{failback: manual, cooldown: 2s, startup_grace: 3s}"


@dataclass
class Peer:
    """A DNS provider the daemon writes to, and how a test reads what it published there."""

    name: str  # the provider's key under `providers:`
    settings: str  # its settings, a YAML flow mapping: "{type: builtin, listen: ...}"
    read: Callable[[str], list[str]]  # FQDN -> the A values the peer holds now, sorted
    zone: str = "example.test"
    secrets: tuple[str, ...] = ()  # must never show up in the daemon's log
    env: dict[str, str] = field(default_factory=dict)  # for `${...}` in `settings`
    # peer-specific evidence that the changes went through its own API, checked after a failover
    check: Callable[[], None] = lambda: None


def builtin_peer(*, verify: bool | str = False, port: int = 0) -> Peer:
    """The daemon's own DNS server on `port` (default: a free one). `verify=True` checks each
    change on itself with the default settings; a string is the `verify` mapping to use."""
    port = port or free_port()
    if isinstance(verify, str):
        check = f", verify: {verify}"
    else:
        check = "" if verify else ", verify: false"
    return Peer(
        "lab",
        f'{{type: builtin, listen: "127.0.0.1:{port}"{check}}}',
        lambda name: dns_a(port, name),
    )


def admin_listen(workdir: Path, port: int, token: str) -> str:
    """`admin_extra` for the admin API on TCP at 127.0.0.1:`port` as well, behind `token`
    (written to workdir/token)."""
    path = workdir / "token"
    path.write_text(token + "\n")
    return f', listen: "127.0.0.1:{port}", token_file: "{path}"'


def config_text(
    workdir: Path,
    peer: Peer,
    primary: TargetServer,
    secondary: TargetServer,
    *,
    metrics_port: int,
    services: tuple[str, ...] = ("shop",),
    record_at: Mapping[str, tuple[str, ...]] | None = None,
    instance: str = "test-1",
    instance_extra: str = "",
    state_dir: Path | None = None,
    admin_extra: str = "",
    more_providers: str = "",
    probe: str = PROBE,
    health: str = HEALTH,
    policy: str = POLICY,
    primary_probe_extra: str = "",
    service_extra: str = "",
    more_services: str = "",
    extra: str = "",
) -> str:
    """The one configuration shape of the daemon tests: each service has an A record at `peer`
    and two targets, `primary` then `secondary`, probed over HTTP.

    `record_at` names, by service, the providers holding its record instead (`peer.name` and/or
    those of `more_providers`, provider entries indented 2 spaces). `state_dir` defaults to
    workdir/state. `admin_extra` is appended to the admin mapping (`admin_listen`),
    `service_extra` to every service (keys indented 4 spaces), `more_services` after them
    (services of another shape, indented 2 spaces), `extra` to the file (top-level keys)."""
    record_at = record_at or {}

    def service(name: str) -> str:
        records = "".join(
            f"\n      - {{provider: {provider}, zone: {peer.zone}, name: {name}.{peer.zone},"
            " type: A, ttl: 30}"
            for provider in record_at.get(name, (peer.name,))
        )
        return f"""
  {name}:
    records:{records}
    targets:
      - name: primary
        location: cloud-a
        values: [{primary.host}]
        probes: [{{type: http, url: "{primary.url}"{primary_probe_extra}}}]
      - name: secondary
        location: cloud-b
        values: [{secondary.host}]
        probes: [{{type: http, url: "{secondary.url}"}}]{service_extra}"""

    state = state_dir or workdir / "state"
    providers = f"  {peer.name}: {peer.settings}\n" + more_providers.strip("\n")
    return f"""
instance: {{name: {instance}, location: lab, state_dir: "{state}"{instance_extra}}}
admin: {{socket: "{workdir / "admin.sock"}"{admin_extra}}}
metrics: {{listen: "127.0.0.1:{metrics_port}"}}
providers:
{providers.rstrip()}
defaults:
  probe: {probe}
  health: {health}
  policy: {policy}
services:{"".join(service(name) for name in services)}{more_services}
{extra}"""


def daemon_config(
    workdir: Path,
    primary: TargetServer,
    secondary: TargetServer,
    *,
    dns_port: int,
    metrics_port: int,
    policy: str = POLICY,
    primary_probe_extra: str = "",
) -> Path:
    """`config_text` with the builtin server on `dns_port`, written to workdir/failover.yaml."""
    path = workdir / "failover.yaml"
    path.write_text(
        config_text(
            workdir,
            builtin_peer(port=dns_port),
            primary,
            secondary,
            metrics_port=metrics_port,
            policy=policy,
            primary_probe_extra=primary_probe_extra,
        )
    )
    return path
