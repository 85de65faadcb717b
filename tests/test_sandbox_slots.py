"""MAX_CONCURRENT_SANDBOXES: a slot is taken before a sandbox starts and given back on every
way out — success, failure, cancel, soft time limit, transient retry, lost worker.

The task runs eagerly against the Kubernetes API double; "another worker" holding a slot is
a slot row taken under another task id, which is all another worker would leave behind.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from celery.exceptions import Retry, SoftTimeLimitExceeded
from django.db import connection
from django.utils import timezone

from analysis import jobs
from analysis.models import AnalysisJob, SandboxSlot, VexDocument
from analysis.profiles import normalize_config
from analysis.recovery import recover_stale_jobs
from analysis.sandbox import slots
from analysis.tasks import run_analysis
from tests.conftest import make_job
from tests.support.sandbox_world import (
    DEPLOYMENTS,
    IMAGE_DIGEST,
    IMAGE_REF,
    SandboxWorld,
    when_evidence_is_stored,
)
from tests.support.settings import small_pipeline_budgets

pytestmark = pytest.mark.django_db
TASK = run_analysis._get_current_object()  # the task itself, not its proxy


@pytest.fixture(autouse=True)
def two_slots(settings):
    small_pipeline_budgets(settings, settle_seconds=0)
    settings.MAX_CONCURRENT_SANDBOXES = 2


def sandbox_job(organization) -> AnalysisJob:
    return make_job(
        organization,
        image_ref=IMAGE_REF,
        image_digest=IMAGE_DIGEST,
        celery_task_id=f"task-{uuid.uuid4()}",
        config=normalize_config("custom", {"analysis_duration": 60}),
    )


@pytest.fixture
def world(sandbox_ready, organization) -> SandboxWorld:
    world = SandboxWorld(sandbox_ready, sandbox_job(organization))
    world.preseed()
    return world


def run_task(job: AnalysisJob) -> None:
    run_analysis.apply(args=[str(job.pk)], task_id=job.celery_task_id)
    job.refresh_from_db()


def held() -> dict[int, str]:
    return dict(SandboxSlot.objects.exclude(task_id="").values_list("number", "task_id"))


def take_all_slots() -> list[str]:
    """Other workers' runs hold every slot."""
    others = [f"other-{n}" for n in range(2)]
    for task_id in others:
        assert slots.acquire(uuid.uuid4(), task_id)
    return others


# -- the slots themselves ----------------------------------------------------------------------


def test_a_slot_is_taken_once_per_run_and_only_up_to_the_limit():
    first, second = uuid.uuid4(), uuid.uuid4()
    assert slots.acquire(first, "run-1")
    assert slots.acquire(first, "run-1")  # a redelivered message keeps its slot
    assert slots.acquire(second, "run-2")
    assert not slots.acquire(uuid.uuid4(), "run-3")
    assert sorted(held().values()) == ["run-1", "run-2"]

    assert slots.release("run-1") == 1
    assert slots.release("run-1") == 0
    assert slots.acquire(uuid.uuid4(), "run-3")
    assert slots.usage().as_dict() == {"limit": 2, "in_use": 2, "waiting": 0}


def test_a_lowered_limit_lets_the_extra_slots_drain_and_never_refills_them(settings):
    settings.MAX_CONCURRENT_SANDBOXES = 3
    for n in range(3):
        assert slots.acquire(uuid.uuid4(), f"run-{n}")
    settings.MAX_CONCURRENT_SANDBOXES = 1
    slots.release("run-2")
    assert not slots.acquire(uuid.uuid4(), "run-3")
    slots.release("run-1")
    assert not slots.acquire(uuid.uuid4(), "run-3")  # slot 0 is still held
    slots.release("run-0")
    assert slots.acquire(uuid.uuid4(), "run-3")
    assert held() == {0: "run-3"}


@pytest.mark.django_db(transaction=True)
def test_racing_threads_never_share_a_slot_or_exceed_the_limit(settings):
    settings.MAX_CONCURRENT_SANDBOXES = 3
    start = threading.Barrier(8)
    won: list[str] = []

    def contend(n: int) -> None:
        start.wait(timeout=30)
        try:
            if slots.acquire(uuid.uuid4(), f"racer-{n}"):
                won.append(f"racer-{n}")
        finally:
            connection.close()

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(won) == 3
    assert sorted(held().values()) == sorted(won)


# -- a job waits, queued, while every slot is taken --------------------------------------------


def test_a_job_without_a_slot_waits_queued_and_unpublished_saying_why(world):
    take_all_slots()
    before = len(world.kube.requests)

    run_task(world.job)

    job = world.job
    assert (job.status, job.current_phase, job.attempts) == ("queued", slots.WAITING_PHASE, 0)
    assert (job.celery_task_id, job.dispatched_at) == ("", None)  # no message waits anywhere
    assert world.kube.requests[before:] == []
    assert slots.usage().as_dict() == {"limit": 2, "in_use": 2, "waiting": 1}


def test_a_freed_slot_starts_the_waiting_jobs_first_come_first_served(world, organization):
    others = take_all_slots()
    later = sandbox_job(organization)
    SandboxWorld(world.kube, later).preseed()
    run_task(world.job)
    run_task(later)
    assert slots.usage().waiting == 2

    # Eager: the freed slot's job runs right here; when it frees the slot, the next one runs.
    slots.release(others[0])

    world.job.refresh_from_db()
    later.refresh_from_db()
    assert (world.job.status, later.status) == ("complete", "complete"), later.error_details
    assert world.job.completed_at <= later.started_at
    assert held() == {1: others[1]}
    assert world.remaining() == []


# -- every way out gives the slot back ---------------------------------------------------------


def test_success_holds_a_slot_while_the_sandbox_runs_and_frees_it_after(world):
    seen: list[dict[int, str]] = []
    with when_evidence_is_stored(lambda: seen.append(held())):
        run_task(world.job)

    assert world.job.status == "complete"
    assert list(seen[0].values()) == [world.job.celery_task_id]
    assert held() == {}
    assert world.remaining() == []


def test_a_failed_job_frees_its_slot(world):
    world.kube.fail(DEPLOYMENTS, 422, method="POST")  # the API server refuses the manifest

    run_task(world.job)

    assert world.job.status == "failed", world.job.error_details
    assert held() == {}


def test_a_job_cancelled_mid_run_frees_its_slot_after_its_sandbox_is_gone(world):
    def cancel() -> None:
        jobs.cancel(AnalysisJob.objects.get(pk=world.job.pk), "test")

    with when_evidence_is_stored(cancel):
        run_task(world.job)

    assert world.job.status == "cancelled"
    assert world.remaining() == []
    assert held() == {}


def test_a_soft_time_limit_frees_the_slot(world):
    def soft_time_limit() -> None:
        raise SoftTimeLimitExceeded()

    with when_evidence_is_stored(soft_time_limit):
        run_task(world.job)

    assert (world.job.status, world.job.error_code) == ("failed", "ANALYSIS_TIMEOUT")
    assert held() == {}


def test_a_transient_failure_frees_the_slot_until_the_retry_takes_one_again(world):
    world.kube.fail(DEPLOYMENTS, 503, method="POST", times=3)  # = K8S_MAX_ATTEMPTS

    with pytest.raises(Retry) as retry:
        run_task(world.job)

    assert (world.job.status, held()) == ("queued", {})
    world.preseed()
    retry.value.sig.apply()
    world.job.refresh_from_db()
    assert world.job.status == "complete"
    assert held() == {}


@pytest.mark.usefixtures("unconsumed_queue")  # the requeued job is published, not run here
def test_a_lost_worker_s_slot_is_freed_by_the_stale_job_recovery(world):
    job = world.job
    task_id = job.celery_task_id
    assert slots.acquire(job.pk, task_id)
    assert jobs.claim(job, task_id)
    AnalysisJob.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - timedelta(minutes=30)
    )

    report = recover_stale_jobs(stale_after=600)

    assert report["requeued"] == [str(job.pk)]
    assert held() == {}  # and the job is published again, under a new task id


def test_a_slot_nobody_will_free_is_reclaimed_and_its_sandbox_deleted(world):
    """A job cancelled while its worker was dying: no task will ever free that slot."""
    job = world.job
    task_id = job.celery_task_id
    assert slots.acquire(job.pk, task_id)
    long_ago = timezone.now() - timedelta(minutes=30)
    SandboxSlot.objects.filter(task_id=task_id).update(acquired_at=long_ago)
    AnalysisJob.objects.filter(pk=job.pk).update(status="cancelled", updated_at=long_ago)
    abandoned = AnalysisJob.objects.get(pk=job.pk)
    orphan_of_a_gone_job = "run-of-a-deleted-job"
    assert slots.acquire(uuid.uuid4(), orphan_of_a_gone_job)
    SandboxSlot.objects.filter(task_id=orphan_of_a_gone_job).update(acquired_at=long_ago)

    report = recover_stale_jobs(stale_after=600)

    assert report["slots"]["cleaned_up"] == [str(abandoned.pk)]
    assert len(report["slots"]["released"]) == 2
    assert held() == {}
    assert not VexDocument.objects.filter(job=abandoned).exists()


def test_a_recent_slot_is_left_to_the_run_that_holds_it(world):
    assert slots.acquire(world.job.pk, world.job.celery_task_id)
    AnalysisJob.objects.filter(pk=world.job.pk).update(status="cancelled")  # just now

    report = recover_stale_jobs(stale_after=600)

    assert report["slots"] == {"released": [], "cleaned_up": []}
    assert held() == {0: world.job.celery_task_id}


def test_health_reports_the_slots_in_use_and_the_jobs_waiting(client, world):
    take_all_slots()
    run_task(world.job)  # finds none free: waits

    check = client.get("/health").json()["checks"]["sandbox_slots"]

    assert {key: check[key] for key in ("status", "required", "limit", "in_use", "waiting")} == {
        "status": "healthy",
        "required": False,
        "limit": 2,
        "in_use": 2,
        "waiting": 1,
    }
