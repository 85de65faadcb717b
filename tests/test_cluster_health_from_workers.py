"""SANDBOX_HEALTH_FROM_WORKERS: a web process without cluster credentials reads the
cluster's health as the workers last probed it, and says how old that report is."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from analysis.sandbox import checks
from tests.conftest import ENVELOPE_KEYS

pytestmark = pytest.mark.django_db

SUBMIT = "/api/v1/analysis/submit"
VALID = {"image_ref": "ghcr.io/acme/app:1.2.3", "image_digest": "sha256:" + "a" * 64}


@pytest.fixture
def from_workers(settings, clean_cache):
    settings.SANDBOX_ENABLED = True
    settings.SANDBOX_HEALTH_FROM_WORKERS = True


def test_the_web_reads_the_workers_report_without_asking_the_cluster(
    client, sandbox_ready, settings, from_workers
):
    settings.SANDBOX_HEALTH_FROM_WORKERS = False  # the worker's own view: it probes
    checks.publish_cluster_health("worker@host-1", at=time.time() - 4)
    settings.SANDBOX_HEALTH_FROM_WORKERS = True
    seen = len(sandbox_ready.requests)

    body = client.get("/health").json()

    assert sandbox_ready.requests[seen:] == []
    for name in ("kubernetes", "kubescape"):
        check = body["checks"][name]
        assert (check["status"], check["reported_by"]) == ("healthy", "worker@host-1")
        assert 4 <= check["report_age_seconds"] < 60
    assert body["checks"]["kubescape"]["apiservice"] == settings.KUBESCAPE_APISERVICE


def test_without_a_report_submissions_are_refused_naming_the_cluster(api, from_workers):
    response = api.post(SUBMIT, VALID, format="json")

    body = response.json()
    assert response.status_code == 503
    assert set(body) == ENVELOPE_KEYS
    assert body["error"] == "SERVICE_UNAVAILABLE"
    assert body["details"] == {
        "service": "kubernetes",
        "reason": "no worker has reported the cluster's health yet",
    }
    assert body["request_id"] == response["X-Request-ID"]


def test_a_stale_report_is_unhealthy_and_says_its_age(client, unreachable_cluster, settings):
    checks.publish_cluster_health("worker@gone", at=time.time() - 600)
    settings.SANDBOX_HEALTH_FROM_WORKERS = True

    check = client.get("/health").json()["checks"]["kubernetes"]

    assert check["status"] == "unhealthy"
    assert check["reason"].startswith("no worker has reported the cluster's health for 6")
    assert check["reported_by"] == "worker@gone"


def test_a_worker_that_cannot_reach_the_cluster_reports_that(client, unreachable_cluster, settings):
    checks.publish_cluster_health("worker@host-2")
    settings.SANDBOX_HEALTH_FROM_WORKERS = True

    check = client.get("/health").json()["checks"]["kubernetes"]

    assert (check["status"], check["reason"]) == ("unhealthy", "Kubernetes API unreachable")
    assert check["reported_by"] == "worker@host-2"


def test_a_worker_s_heartbeats_publish_at_most_once_per_cache_period(
    sandbox_ready, settings, clean_cache, monkeypatch
):
    settings.HEALTH_KUBERNETES_CACHE_SECONDS = 300
    published: list[str] = []
    monkeypatch.setattr(checks, "publish_cluster_health", published.append)
    reporter = checks._Reporter()
    sender = SimpleNamespace(eventer=SimpleNamespace(hostname="worker@host-3"))

    for _ in range(5):
        reporter.on_heartbeat(sender)
        assert reporter._lock.acquire(timeout=10)  # the probe thread finished
        reporter._lock.release()

    assert published == ["worker@host-3"]
