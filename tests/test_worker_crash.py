"""A real worker killed mid-job: recovery, a second worker, exactly one result, nothing left.

Once the job is ``analyzing`` the worker is SIGKILLed. ``recover_stale_jobs`` then requeues the
job (or, past the attempt limit, fails it as ``WORKER_LOST``) and removes the lost attempt's
sandbox; a new worker finishes it. The workers and helpers are in tests/real_workers.py.
"""

from __future__ import annotations

import pytest

from analysis.dispatch import PUBLISHED, publish
from analysis.models import VexDocument
from tests.support.real_workers import (
    collect_garbage,
    current,
    deployment_requests,
    finish_scan,
    kill,
    reconcile_dry_run,
    recover,
    run_until_observing,
    wait_until,
)
from tests.support.sandbox_world import SandboxWorld

pytestmark = pytest.mark.slow


@pytest.mark.timeout(300)
def test_a_killed_worker_s_job_completes_once_on_a_new_worker(
    workers, crash_settings, sandbox_ready, job
):
    world = SandboxWorld(sandbox_ready, job)
    assert publish(job.pk) == PUBLISHED
    first_task = current(job).celery_task_id

    first, _ = run_until_observing(world, workers, "first")
    kill(first)

    report = recover(job)
    assert report["requeued"] == [str(job.pk)]
    assert report["cleanup_failures"] == {}
    assert world.remaining() == []  # the lost attempt's sandbox and Kubescape objects
    collect_garbage(world)
    job = current(job)
    assert (job.status, job.attempts) == ("queued", 1)
    assert job.celery_task_id not in ("", first_task)  # republished under a new task id

    _, output = run_until_observing(world, workers, "second")
    job = finish_scan(world, output, job, attempts=2)
    # One Deployment at a time: the second was created only after the first was deleted.
    requests = deployment_requests(world)
    assert requests[:2] == ["create", "delete"], requests
    assert requests.count("create") == 2, requests
    wait_until(lambda: world.remaining() == [], 30, "the second attempt's cleanup")
    collect_garbage(world)
    assert reconcile_dry_run()["deleted"] == []


@pytest.mark.timeout(300)
def test_a_killed_worker_s_job_past_the_attempt_limit_fails_as_worker_lost(
    workers, crash_settings, settings, sandbox_ready, job
):
    settings.ANALYSIS_MAX_ATTEMPTS = 1
    world = SandboxWorld(sandbox_ready, job)
    assert publish(job.pk) == PUBLISHED

    first, _ = run_until_observing(world, workers, "only")
    kill(first)

    report = recover(job)
    assert report["failed"] == [str(job.pk)]
    assert report["cleanup_failures"] == {}
    job = current(job)
    assert (job.status, job.error_code, job.attempts) == ("failed", "WORKER_LOST", 1)
    assert not VexDocument.objects.filter(job=job).exists()
    assert world.remaining() == []
    collect_garbage(world)
    assert reconcile_dry_run()["deleted"] == []
    assert deployment_requests(world) == ["create", "delete"]
