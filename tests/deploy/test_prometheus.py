"""deploy/prometheus: the alert rules, their unit tests and the example config, checked with
promtool; and the daemon's real /metrics, linted by promtool and holding every metric the rules
query."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from failover.metrics import ALARMS, LiveView, Metrics, ServiceView, TargetView
from failover.model import Health, Mode
from tests.deploy.live_metrics import metric_names, missing_metrics, scrape
from tests.support import REPO, metric_value

PROMETHEUS = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS / "failover.rules.yml"
RULE_TESTS = PROMETHEUS / "tests" / "failover.rules.test.yml"
SEVERITIES = {"critical", "warning", "info"}


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool not found: `apt-get install prometheus` (./scripts/test does it)")
    return subprocess.run(
        ["promtool", *args], input=stdin, capture_output=True, text=True, timeout=120
    )


def alerting_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_rules_pass_promtool_check_and_lint() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_example_prometheus_config_is_valid_and_loads_the_rules() -> None:
    result = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failover.rules.yml" in result.stdout


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fires, quiet = set(), set()
    for group in tests:
        for case in group.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    alerts = {rule["alert"] for rule in alerting_rules()}
    assert alerts - fires == set(), "alerts never shown firing"
    assert alerts - quiet == set(), "alerts never shown quiet"
    assert (fires | quiet) - alerts == set(), "tests of alerts that do not exist"


def test_every_alert_has_a_severity_and_a_runbook() -> None:
    for rule in alerting_rules():
        name, annotations = rule["alert"], rule.get("annotations", {})
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        assert annotations.get("summary"), name
        # The description is the runbook: what it means and a command or check to run.
        assert len(annotations.get("description", "")) > 150, name
        assert "`" in annotations["description"], f"{name}: no command to run"


def test_promtool_metric_lint_catches_a_bad_exposition() -> None:
    """The lint below is only worth something if promtool really flags a bad name."""
    bad = "# HELP foo_count A counter.\n# TYPE foo_count counter\nfoo_count 1\n"
    result = promtool("check", "metrics", stdin=bad)
    assert result.returncode != 0
    assert "_total" in result.stdout + result.stderr


def test_real_metrics_pass_promtool_lint() -> None:
    result = promtool("check", "metrics", stdin=scrape())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""


def test_rules_query_only_metrics_the_daemon_exports() -> None:
    queried: set[str] = set()
    for rule in alerting_rules():
        queried |= metric_names(rule["expr"])
    assert "failover_target_priority" in queried  # sanity: the parser found the selectors
    assert missing_metrics(queried, scrape()) == set()


def _live(alarms: frozenset[str]) -> str:
    metrics = Metrics()
    targets = tuple(TargetView(name, Health.UP) for name in ("aws", "ovh", "scw"))
    service = ServiceView("shop", Mode.AUTO, "ovh", targets, alarms)
    metrics.attach_live(lambda: LiveView("gra-1", True, False, (service,)))
    return generate_latest(metrics.registry).decode()


def test_target_priority_says_which_target_is_the_primary() -> None:
    text = _live(frozenset())
    for position, name in enumerate(("aws", "ovh", "scw")):
        value = metric_value(text, "failover_target_priority", service="shop", target=name)
        assert value == position


def test_not_verified_alarm_reaches_the_metric() -> None:
    assert "not_verified" in ALARMS
    text = _live(frozenset({"not_verified"}))
    assert metric_value(text, "failover_service_alarm", alarm="not_verified") == 1
    assert metric_value(text, "failover_service_alarm", alarm="drift") == 0


def test_rule_expressions_name_real_alarms() -> None:
    """An alarm misspelt in a rule would never fire: every alarm="…" a rule names must exist."""
    matchers = re.findall(r'alarm=~?"([^"]+)"', RULES.read_text())
    named = {part for alarm in matchers for part in alarm.split("|")}
    assert named, "no alarm matcher found"
    assert named - set(ALARMS) == set()


def test_readme_lists_every_alert() -> None:
    readme = (REPO / "README.md").read_text()
    for rule in alerting_rules():
        assert rule["alert"] in readme, f"{rule['alert']} missing from README Alerts"
