"""manage.py check_health: the /health checks for operators and scripts."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.django_db
def test_healthy_prints_a_summary_and_succeeds(capsys, settings, clean_cache):
    settings.SANDBOX_ENABLED = False
    call_command("check_health")
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "HEALTHY"
    assert "  database          healthy" in out
    assert "  kubernetes        disabled (optional) - sandbox disabled (SANDBOX_ENABLED)" in out


@pytest.mark.django_db
@pytest.mark.usefixtures("unreachable_cluster")
def test_unhealthy_json_names_the_checks_and_exits_1(capsys):
    with pytest.raises(CommandError) as raised:
        call_command("check_health", "--json")
    assert raised.value.returncode == 1
    assert str(raised.value) == "SERVICE_UNAVAILABLE: unhealthy: kubernetes, kubescape"
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "unhealthy"
    assert (report["error"], report["message"]) == (
        "SERVICE_UNAVAILABLE",
        "unhealthy: kubernetes, kubescape",
    )
    assert report["checks"]["kubernetes"]["reason"] == "Kubernetes API unreachable"
    assert report["checks"]["database"]["status"] == "healthy"
    assert len(report["request_id"]) == 36


@pytest.mark.django_db
def test_each_run_has_its_own_request_id(capsys, settings, clean_cache):
    settings.SANDBOX_ENABLED = False
    call_command("check_health", "--json")
    call_command("check_health", "--json")
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["request_id"] != second["request_id"]
    assert "error" not in first  # healthy: a report, no error members
