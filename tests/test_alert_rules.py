"""The Prometheus alert rules in deploy/prometheus: checked and unit-tested with promtool.

``promtool`` comes with Debian's ``prometheus`` package (.ci/run installs it). Without it the
promtool tests are skipped locally and fail in CI (``CI`` set). The tests of the files' shape
(every alert tested firing and not firing, a runbook, only the service's metric names) need
nothing but PyYAML.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.tools import required_tool

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS = REPO / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERT_TESTS = PROMETHEUS / "alerts.test.yml"
SCRAPE = PROMETHEUS / "scrape.yml"
METRIC_NAMES = PROMETHEUS / "metric_names.txt"
README = REPO / "README.md"

SEVERITIES = {"page", "ticket"}
# A histogram's base name stands for its exported series.
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load(ALERTS)["groups"] for rule in group["rules"] if "alert" in rule]


def rule_tests() -> list[dict[str, Any]]:
    """Every alert_rule_test of alerts.test.yml, with the name of its test."""
    return [
        {**case, "test": test.get("name", "")}
        for test in load(ALERT_TESTS)["tests"]
        for case in test.get("alert_rule_test", [])
    ]


def runbook_anchor(alertname: str) -> str:
    """GitHub's anchor of the README heading "Runbook: <alertname>"."""
    return f"runbook-{alertname.lower()}"


# -- promtool ---------------------------------------------------------------------------------


@pytest.fixture
def promtool() -> str:
    return required_tool("promtool", "prometheus")


def run(*command: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_promtool_checks_the_rules(promtool: str) -> None:
    result = run(promtool, "check", "rules", ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass(promtool: str) -> None:
    result = run(promtool, "test", "rules", ALERT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_checks_the_scrape_config(promtool: str, tmp_path: Path) -> None:
    """The full check, files included: the token file it names (relative to the configuration,
    as in /etc/prometheus) is made in a copy, next to the rules it loads."""
    for path in (SCRAPE, ALERTS):
        shutil.copy(path, tmp_path / path.name)
    config = load(SCRAPE)
    for job in config["scrape_configs"]:
        credentials = job.get("authorization", {}).get("credentials_file")
        if credentials:
            assert not Path(credentials).is_absolute(), credentials
            token = tmp_path / credentials
            token.parent.mkdir(parents=True, exist_ok=True)
            token.write_text("a-metrics-token\n", encoding="utf-8")
    result = run(promtool, "check", "config", tmp_path / SCRAPE.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


# -- the files' shape ----------------------------------------------------------------------------


def test_one_group_of_uniquely_named_alerts() -> None:
    groups = load(ALERTS)["groups"]
    assert len(groups) == 1
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), names
    assert names, "no alert in alerts.yml"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_has_severity_for_and_runbook(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    assert re.fullmatch(r"\d+[smh]", rule["for"]), rule.get("for")
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert annotations["runbook_url"] == f"README.md#{runbook_anchor(rule['alert'])}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_is_tested_firing_and_not_firing(rule: dict[str, Any]) -> None:
    cases = [case for case in rule_tests() if case["alertname"] == rule["alert"]]
    firing = [case for case in cases if case.get("exp_alerts")]
    quiet = [case for case in cases if not case.get("exp_alerts")]
    assert firing, f"no promtool case where {rule['alert']} fires"
    assert quiet, f"no promtool case where {rule['alert']} does not fire"
    for case in firing:
        for alert in case["exp_alerts"]:
            # exact labels and annotations: promtool compares all of them
            assert alert["exp_labels"]["severity"] == rule["labels"]["severity"], case["test"]
            assert set(alert["exp_annotations"]) == set(rule["annotations"]), case["test"]


def test_unit_tests_load_the_rules_and_name_only_known_alerts() -> None:
    assert load(ALERT_TESTS)["rule_files"] == [ALERTS.name]
    assert load(SCRAPE)["rule_files"] == [ALERTS.name]
    names = {rule["alert"] for rule in alert_rules()}
    assert {case["alertname"] for case in rule_tests()} <= names


def metric_names() -> list[str]:
    return METRIC_NAMES.read_text(encoding="utf-8").split()


def test_metric_names_list_is_one_name_a_line() -> None:
    lines = METRIC_NAMES.read_text(encoding="utf-8").splitlines()
    assert lines == metric_names()
    assert len(lines) == len(set(lines))
    assert all(re.fullmatch(r"vexxy_[a-z0-9_]+", line) for line in lines), lines


def used_metrics(text: str) -> set[str]:
    return set(re.findall(r"\bvexxy_[a-z0-9_]+", text))


def known(name: str, names: set[str]) -> bool:
    return name in names or any(
        name.endswith(suffix) and name.removesuffix(suffix) in names
        for suffix in HISTOGRAM_SUFFIXES
    )


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_rules_use_only_the_service_metric_names(rule: dict[str, Any]) -> None:
    used = used_metrics(rule["expr"])
    assert used, f"{rule['alert']} uses no vexxy_ metric"
    unknown = {name for name in used if not known(name, set(metric_names()))}
    assert not unknown, f"{rule['alert']}: not in metric_names.txt: {sorted(unknown)}"


def test_unit_tests_feed_only_the_service_metric_names() -> None:
    series = [
        entry["series"]
        for test in load(ALERT_TESTS)["tests"]
        for entry in test.get("input_series", [])
    ]
    unknown = {
        name
        for entry in series
        for name in used_metrics(entry.split("{", 1)[0])
        if not known(name, set(metric_names()))
    }
    assert not unknown, sorted(unknown)


def readme_runbook_anchors() -> set[str]:
    headings = re.findall(r"^#+\s+Runbook:\s*(\S+)\s*$", README.read_text(encoding="utf-8"), re.M)
    return {runbook_anchor(name) for name in headings}


def test_readme_has_a_runbook_for_every_alert() -> None:
    anchors = readme_runbook_anchors()
    missing = {
        rule["alert"] for rule in alert_rules() if runbook_anchor(rule["alert"]) not in anchors
    }
    assert not missing, f"README.md: no 'Runbook: <alert>' heading for {sorted(missing)}"
