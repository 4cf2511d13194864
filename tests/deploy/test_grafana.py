"""deploy/grafana/failover.json: every panel has a query, every query parses (promql-parser and
promtool, Prometheus's own parser) and selects only metrics the daemon really exports, both as
failover.metrics declares them and as a real daemon serves them after a failover. The panel
check is itself shown to fail on copies of the dashboard broken in the ways that matter."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import generate_latest

from failover.metrics import LiveView, Metrics
from tests.deploy.live_metrics import (
    declared_names,
    metric_names,
    missing_metrics,
    scrape,
    selectors,
)
from tests.support import REPO

DASHBOARD = REPO / "deploy" / "grafana" / "failover.json"
# Grafana's own variables, replaced by a value of the right kind before parsing.
BUILTIN = {"__rate_interval": "5m", "__interval": "1m", "__range": "3h"}
MARK = "chosen-services"
# The incident views the dashboard exists for: each of these must be queried.
REQUIRED = {
    "failover_active_target",
    "failover_target_up",
    "failover_probe_success",
    "failover_probe_duration_seconds_bucket",
    "failover_probe_phase_duration_seconds",
    "failover_switches_total",
    "failover_dns_changes_total",
    "failover_dns_change_duration_seconds_bucket",
    "failover_dns_propagation_seconds_bucket",
    "failover_detection_to_publish_seconds_bucket",
    "failover_provider_errors_total",
    "failover_service_alarm",
    "failover_probe_scheduling_lag_seconds_bucket",
}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def variables(board: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in (board or dashboard())["templating"]["list"]}


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def variable_selectors() -> list[str]:
    """The selector inside each variable's label_values(SELECTOR, LABEL)."""
    found = []
    for var in variables().values():
        if var["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", var["query"]["query"])
            assert match, f"variable {var['name']}: unexpected query {var['query']}"
            found.append(match.group(1))
    return found


def queries() -> list[str]:
    """Every PromQL the dashboard sends: panel targets, annotations, variable queries."""
    found = [node["expr"] for node in _walk(dashboard()) if isinstance(node.get("expr"), str)]
    return found + variable_selectors()


def substitute(expr: str, board: dict[str, Any] | None = None, **values: str) -> str:
    """Grafana variables → values of their kind (a regex for the dashboard's own variables,
    unless `values` gives one); an unknown variable fails the test."""
    names = set(variables(board))

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in BUILTIN:
            return BUILTIN[name]
        assert name in names, f"undefined variable ${name} in {expr}"
        return values.get(name, ".*")

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def module_metrics() -> set[str]:
    """Every sample name failover.metrics can export: the event metrics and the live-state
    gauges (declared even with no service), histograms with their _bucket/_sum/_count."""
    metrics = Metrics()
    metrics.attach_live(lambda: LiveView("grafana-check", True, False, ()))
    return declared_names(generate_latest(metrics.registry).decode())


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The panels that draw something (rows excepted), also those inside collapsed rows."""
    for panel in board.get("panels", []):
        if panel.get("type") == "row":
            yield from (p for p in panel.get("panels", []) if p.get("type") != "row")
        else:
            yield panel


def panel_problems(board: dict[str, Any], known: set[str]) -> list[str]:
    """Why a panel would show nothing: no target, a target without a query, a query that does
    not parse or selects no series, or a series the daemon does not export (`known`; `up`, the
    scrape health Prometheus adds to the failover job, is allowed)."""
    problems = []
    for panel in panels(board):
        title = panel.get("title") or f"panel {panel.get('id')}"
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{title}: no query")
        for target in targets:
            expr = target.get("expr")
            where = f"{title} [{target.get('refId', '?')}]"
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"{where}: empty query")
                continue
            try:
                selected = metric_names(substitute(expr, board))
            except Exception as exc:  # the parser raises ValueError subclasses
                problems.append(f"{where}: does not parse: {expr}: {exc}")
                continue
            if not selected:
                problems.append(f"{where}: selects no series: {expr}")
            unknown = selected - known - {"up"}
            if unknown:
                problems.append(f"{where}: not exported by failover: {sorted(unknown)}")
    return problems


def test_every_panel_queries_metrics_the_daemon_exports() -> None:
    known = module_metrics()
    assert {"failover_target_up", "failover_switches_total"} <= known  # sanity
    assert len(list(panels(dashboard()))) > 10
    assert panel_problems(dashboard(), known) == []


def _no_targets(board: dict[str, Any]) -> None:
    for panel in panels(board):
        panel["targets"] = []


def _empty_exprs(board: dict[str, Any]) -> None:
    for node in _walk(board):
        if "expr" in node:
            node["expr"] = ""


def _no_expr_key(board: dict[str, Any]) -> None:
    for node in _walk(board):
        node.pop("expr", None)


def _renamed_metrics(board: dict[str, Any]) -> None:
    for node in _walk(board):
        if isinstance(node.get("expr"), str):
            node["expr"] = node["expr"].replace("failover_", "failover_old_")


def _constant_queries(board: dict[str, Any]) -> None:
    for node in _walk(board):
        if isinstance(node.get("expr"), str):
            node["expr"] = "vector(1)"


def _not_promql(board: dict[str, Any]) -> None:
    for node in _walk(board):
        if isinstance(node.get("expr"), str):
            node["expr"] = "SELECT * FROM metrics"


@pytest.mark.parametrize(
    "breakage",
    [_no_targets, _empty_exprs, _no_expr_key, _renamed_metrics, _constant_queries, _not_promql],
)
def test_the_panel_check_fails_on_a_dashboard_that_shows_nothing(breakage: Any) -> None:
    board = copy.deepcopy(dashboard())
    breakage(board)
    problems = panel_problems(board, module_metrics())
    broken = [b["title"] for a, b in zip(panels(dashboard()), panels(board), strict=True) if a != b]
    assert len(broken) > 10  # the breakage reached the panels (`up` alone is left as it was)
    for title in broken:  # each one is reported, by name
        assert any(problem.startswith(f"{title}") for problem in problems), (title, problems)


def test_dashboard_has_datasource_and_service_variables() -> None:
    found = variables()
    assert found["datasource"]["type"] == "datasource"
    assert found["datasource"]["query"] == "prometheus"
    assert found["service"]["type"] == "query"
    assert found["service"]["multi"] and found["service"]["includeAll"]
    for node in _walk(dashboard()):
        if "datasource" in node and node.get("type") != "dashboard":
            uid = node["datasource"]["uid"]
            assert uid == "${datasource}", f"{node.get('title', node.get('name'))}: {uid}"


def test_panels_are_well_formed() -> None:
    panels = dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        assert panel.get("description"), f"{panel['title']}: say what the panel shows"


def test_every_query_parses() -> None:
    exprs = [substitute(e) for e in queries()]
    for expr in exprs:
        try:
            promql_parser.parse(expr)
        except Exception as exc:  # the parser raises ValueError subclasses
            pytest.fail(f"does not parse: {expr}: {exc}")


def test_every_query_parses_with_prometheus_own_parser(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        pytest.fail("promtool not found: `apt-get install prometheus` (./scripts/test does it)")
    rules = [
        {"record": f"dashboard:query_{n}", "expr": substitute(e)} for n, e in enumerate(queries())
    ]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_per_service_queries_follow_the_service_variable() -> None:
    """Choosing services must narrow every panel: each selector of a metric that has a service
    label filters on $service (variable queries excepted: they list the services)."""
    per_service = set(re.findall(r'^(\w+)\{[^}]*\bservice="', scrape(), re.M))
    assert "failover_target_up" in per_service
    panel_queries = set(queries()) - set(variable_selectors())
    for expr in panel_queries:
        for name, matchers in selectors(substitute(expr, service=MARK)):
            if name in per_service:
                assert matchers.get("service") == MARK, f"{name} ignores $service in {expr}"


def test_dashboard_covers_the_incident_views() -> None:
    queried: set[str] = set()
    for expr in queries():
        queried |= metric_names(substitute(expr))
    assert REQUIRED - queried == set()


def test_every_queried_metric_exists_in_the_real_metrics() -> None:
    queried: set[str] = set()
    for expr in queries():
        queried |= metric_names(substitute(expr))
    assert len(queried) > 15  # sanity: the parser found the selectors
    assert missing_metrics(queried, scrape()) == set()
