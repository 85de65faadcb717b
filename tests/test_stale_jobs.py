"""Jobs whose worker was lost are requeued or failed, never left running."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_celery_results.models import TaskResult

from analysis.models import AnalysisJob
from analysis.sandbox import manifests
from analysis.sandbox.pipeline import JobCancelled, Pipeline
from analysis.tasks import recover_stale_jobs_task
from reliability.locks import cache_lock
from tests.conftest import make_job

pytestmark = pytest.mark.django_db


def running_job(organization, *, heartbeat_age: float, attempts: int = 1, **fields):
    return make_job(
        organization,
        profile="minimal",
        status="running",
        attempts=attempts,
        celery_task_id=str(uuid.uuid4()),
        dispatched_at=timezone.now(),
        heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age),
        **fields,
    )


def recover(*args: str) -> dict:
    out = StringIO()
    call_command("recover_stale_jobs", "--stale-after", "300", "--json", *args, stdout=out)
    report = json.loads(out.getvalue())
    assert len(report.pop("request_id")) == 36
    return report


@pytest.mark.usefixtures("sandbox_disabled", "unconsumed_queue")
def test_dry_run_reports_and_the_real_run_does_exactly_that(organization):
    requeue = running_job(organization, heartbeat_age=900)
    give_up = running_job(organization, heartbeat_age=900, attempts=3)
    alive = running_job(organization, heartbeat_age=10)

    planned = recover("--dry-run")
    assert planned == {
        "requeued": [str(requeue.pk)],
        "failed": [str(give_up.pk)],
        "skipped": [],
        "cleanup_failures": {},
        "slots": {"released": [], "cleaned_up": []},
        "dry_run": True,
    }
    assert set(AnalysisJob.objects.values_list("status", flat=True)) == {"running"}

    done = recover()
    assert {k: done[k] for k in ("requeued", "failed")} == {
        k: planned[k] for k in ("requeued", "failed")
    }
    requeue.refresh_from_db()
    give_up.refresh_from_db()
    alive.refresh_from_db()
    assert requeue.status == "queued"
    assert requeue.dispatched_at is not None  # published again, under a new task id
    assert requeue.celery_task_id
    assert (give_up.status, give_up.error_code, give_up.error_details) == (
        "failed",
        "WORKER_LOST",
        {"attempts": 3},
    )
    assert alive.status == "running"
    assert recover()["requeued"] == []


def test_the_old_task_of_a_requeued_job_stops_at_its_next_poll(organization, settings):
    settings.SANDBOX_ENABLED = False
    job = running_job(organization, heartbeat_age=900)
    pipeline = Pipeline(job)
    pipeline.checkpoint()  # still its own
    AnalysisJob.objects.filter(pk=job.pk).update(status="queued", celery_task_id="")
    with pytest.raises(JobCancelled):
        pipeline.checkpoint()


@pytest.mark.usefixtures("unconsumed_queue")
def test_the_sandbox_of_a_stale_job_is_removed(organization, sandbox_ready):
    job = running_job(organization, heartbeat_age=900, attempts=3)
    name = manifests.sandbox_name(job.pk)
    sandbox = sandbox_ready
    namespace = "vexxy-sandbox"
    sandbox.put(
        "apps/v1/deployments",
        manifests.deployment(job, namespace=namespace, resources={"limits": {"cpu": "1"}}),
    )
    assert sandbox.get("apps/v1/deployments", name, namespace) is not None

    report = recover()

    assert report["failed"] == [str(job.pk)]
    assert sandbox.get("apps/v1/deployments", name, namespace) is None


@pytest.mark.usefixtures("sandbox_disabled", "clean_cache")
def test_overlapping_beat_runs_act_once(organization, settings):
    settings.STALE_JOB_SECONDS = 300
    running_job(organization, heartbeat_age=900, attempts=3)
    with cache_lock("recover_stale_jobs", 60) as held:
        assert held
        assert recover_stale_jobs_task.apply().get() is None  # another run holds the lock
    assert recover_stale_jobs_task.apply().get()["failed"]


@pytest.mark.usefixtures("sandbox_disabled", "clean_cache")
def test_each_beat_run_keeps_its_report_for_the_admin(
    organization, settings, admin_client, monkeypatch
):
    """Stored by the django-db result backend, as a worker stores it (eagerly here)."""
    settings.STALE_JOB_SECONDS = 300
    job = running_job(organization, heartbeat_age=900, attempts=3)
    monkeypatch.setattr(recover_stale_jobs_task, "store_eager_result", True)

    run = recover_stale_jobs_task.apply()

    stored = TaskResult.objects.get(task_id=run.id)
    assert (stored.task_name, stored.status) == ("analysis.recover_stale_jobs", "SUCCESS")
    assert json.loads(stored.result)["failed"] == [str(job.pk)]
    page = admin_client.get(f"/admin/django_celery_results/taskresult/{stored.pk}/change/")
    assert page.status_code == 200
    assert str(job.pk) in page.content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("clean_cache")
def test_only_one_of_many_concurrent_holders_gets_the_lock():
    start, results = threading.Barrier(6), []

    def contend() -> None:
        from django.db import connection

        try:
            start.wait()
            with cache_lock("contended", 60) as held:
                results.append(held)
                start_done.wait()
        finally:
            connection.close()

    start_done = threading.Barrier(6)
    threads = [threading.Thread(target=contend) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
