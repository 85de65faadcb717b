"""The metrics the alert rules and the README name are the ones /metrics exposes, and no others."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reliability.heartbeats import record_heartbeat

NAMES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "metric_names.txt"
README = Path(__file__).resolve().parents[1] / "README.md"
FAMILY = re.compile(r"^# TYPE (vexxy_\w+) (\w+)$", re.MULTILINE)


def listed() -> set[str]:
    return {line.strip() for line in NAMES.read_text().splitlines() if line.strip()}


@pytest.mark.django_db
def test_metrics_exposes_exactly_the_listed_families(client, clean_cache):
    record_heartbeat("worker@here")  # the heartbeat age has no sample before one

    response = client.get("/metrics")

    assert response.status_code == 200
    families = {name for name, _ in FAMILY.findall(response.content.decode())}
    # In-process (no multiprocess directory) the client adds *_created gauges of its own.
    assert {name for name in families if not name.endswith("_created")} == listed()


def test_the_readme_documents_every_metric():
    documented = set(re.findall(r"`(vexxy_\w+)`", README.read_text()))
    assert listed() <= documented, sorted(listed() - documented)
