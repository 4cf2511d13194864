"""The daemon's real /metrics after an incident, for the checks of deploy/ (promtool, Grafana).

One daemon run per test session (`scrape()` is cached): a failover with DNS verification on
(switch, change and propagation histograms), a DNS provider that refuses every change (failed
changes, provider errors) and a TLS probe (certificate expiry). So every metric the alert rules
and the dashboard query has real samples, not only a declaration.
"""

from __future__ import annotations

import functools
import re
import shutil
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import promql_parser
import trustme

from tests.support import DaemonProcess, TargetServer, dns_a, free_port, metric_value, wait_until

PRIMARY, SECONDARY = "127.0.0.71", "127.0.0.72"
NAME = "shop.example.test"
# Metrics that exist only once an event happened which this run cannot cause (issue 6 drills):
# they must still be declared (# TYPE) in the output.
DECLARED_ONLY = frozenset({"failover_last_drill_timestamp_seconds", "failover_last_drill_success"})


@contextmanager
def tls_server(host: str, ca: trustme.CA) -> Iterator[int]:
    """A TLS listener with a certificate from `ca`, for the `tls` probe."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host).configure_cert(context)
    server = ThreadingHTTPServer((host, 0), BaseHTTPRequestHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def _config(
    workdir: Path,
    primary: str,
    secondary: str,
    dns_port: int,
    metrics_port: int,
    tls_port: int,
    ca_file: Path,
) -> str:
    return f"""
instance: {{name: metrics-lab, location: lab, state_dir: "{workdir / "state"}"}}
admin: {{socket: "{workdir / "admin.sock"}"}}
metrics: {{listen: "127.0.0.1:{metrics_port}"}}
providers:
  lab:
    type: builtin
    listen: "127.0.0.1:{dns_port}"
    verify: {{nameservers: ["127.0.0.1:{dns_port}"], timeout: 10s}}
  refusing:                     # the builtin server answers NOTIMP to every UPDATE
    type: rfc2136
    server: 127.0.0.1
    port: {dns_port}
    timeout: 2s
    verify: false
    retry: {{attempts: 1}}
defaults:
  probe: {{interval: 200ms, timeout: 150ms}}
  health: {{fall: 2, rise: 2}}
  policy: {{failback: manual, cooldown: 2s, startup_grace: 3s}}
services:
  shop:
    records:
      - {{provider: lab, zone: example.test, name: {NAME}, type: A, ttl: 30}}
    targets:
      - name: primary
        location: cloud-a
        values: [{PRIMARY}]
        probes: [{{type: http, url: "{primary}"}}]
      - name: secondary
        location: cloud-b
        values: [{SECONDARY}]
        probes:
          - {{type: http, url: "{secondary}"}}
          - {{type: tls, address: "{SECONDARY}:{tls_port}", ca_file: "{ca_file}"}}
  api:
    records:
      - {{provider: refusing, zone: example.test, name: api.example.test, type: A, ttl: 30}}
    targets:
      - name: only
        location: cloud-b
        values: [{SECONDARY}]
        probes: [{{type: http, url: "{secondary}"}}]
"""


def _incident_seen(text: str) -> bool:
    wanted = [
        ("failover_switches_total", {"to": "secondary"}),
        ("failover_dns_propagation_seconds_count", {"provider": "lab"}),
        ("failover_dns_changes_total", {"provider": "refusing", "result": "error"}),
        ("failover_provider_errors_total", {"provider": "refusing"}),
        ("failover_probe_tls_cert_expiry_timestamp_seconds", {"target": "secondary"}),
    ]
    return all((metric_value(text, name, **labels) or 0) > 0 for name, labels in wanted)


@functools.cache
def scrape() -> str:
    """Run the incident once and return the /metrics text scraped at its end."""
    workdir = Path(tempfile.mkdtemp(prefix="failover-deploy-"))
    primary = TargetServer(PRIMARY).start()
    secondary = TargetServer(SECONDARY).start()
    daemon: DaemonProcess | None = None
    try:
        ca = trustme.CA()
        ca_file = workdir / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        with tls_server(SECONDARY, ca) as tls_port:
            dns_port, metrics_port = free_port(), free_port()
            config = workdir / "failover.yaml"
            config.write_text(
                _config(
                    workdir, primary.url, secondary.url, dns_port, metrics_port, tls_port, ca_file
                )
            )
            daemon = running = DaemonProcess(config, metrics_port, workdir / "admin.sock").start()
            wait_until(lambda: dns_a(dns_port, NAME) == [PRIMARY], 30, "the primary published")
            primary.stop()
            wait_until(lambda: dns_a(dns_port, NAME) == [SECONDARY], 30, "the failover")

            def after_incident() -> str | None:
                text = running.metrics()
                return text if _incident_seen(text) else None

            what = "a switch, a propagation, a failed change, a provider error, a cert expiry"
            return str(wait_until(after_incident, 60, what))
    finally:
        if daemon is not None:
            daemon.stop()
        primary.close()
        secondary.close()
        shutil.rmtree(workdir, ignore_errors=True)


def exported_names(text: str) -> set[str]:
    """Names of the samples in a Prometheus text exposition."""
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M)}


def declared_names(text: str) -> set[str]:
    """Names declared by `# TYPE`, with the sample names a histogram or summary implies."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names.add(name)
        if kind in ("histogram", "summary"):
            names.update(f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
    return names


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """Each metric a PromQL expression selects, with its label matchers (label -> value), found
    by parsing the expression, not by pattern matching."""
    found: list[tuple[str, dict[str, str]]] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            found.append((node.name, {m.name: m.value for m in node.matchers.matchers}))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def metric_names(expr: str) -> set[str]:
    return {name for name, _ in selectors(expr)}


def missing_metrics(queried: set[str], text: str) -> set[str]:
    """The queried metrics the daemon does not export (`up` is Prometheus's own)."""
    present = exported_names(text) | (declared_names(text) & DECLARED_ONLY)
    return queried - present - {"up"}
