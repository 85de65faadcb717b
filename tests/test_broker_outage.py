"""The broker is down at submit, with a real worker waiting: the job waits, then runs once.

A real ``celery worker`` (filesystem broker locally, Redis in CI) consumes this test's queue
(tests/test_worker_crash.py). A job is submitted through the API while this process's
publishes go to a closed port (``broker_unreachable``): it is accepted and stays ``queued``,
unpublished, and the worker receives nothing. With the broker back, ``dispatch_pending_jobs``
publishes it once; the worker runs it against the Kubernetes API double while the test plays
the cluster and Kubescape (tests/support/sandbox_world.py), and it completes exactly once.
"""

from __future__ import annotations

import pytest

from analysis.models import AnalysisJob
from tests.support.processes import ProcessOutput
from tests.support.real_workers import (
    Workers,
    collect_garbage,
    current,
    deployment_of_attempt,
    deployment_requests,
    finish_scan,
    reconcile_dry_run,
    wait_until,
)
from tests.support.sandbox_world import IMAGE_DIGEST, IMAGE_REF, SandboxWorld
from tests.test_dispatch import SUBMIT, broker_unreachable, dispatch
from vexxy.celery import app as celery_app

pytestmark = pytest.mark.slow

BODY = {
    "image_ref": IMAGE_REF,
    "image_digest": IMAGE_DIGEST,
    "profile": "custom",
    "config": {"analysis_duration": 90},
}


def received(output: ProcessOutput) -> list[str]:
    """The worker's "Task analysis.run_analysis[...] received" lines so far."""
    return [
        line
        for line in list(output.lines)
        if "analysis.run_analysis[" in line and "received" in line
    ]


@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("crash_settings")
def test_a_job_submitted_while_the_broker_is_down_is_dispatched_once_and_completes(
    workers: Workers, sandbox_ready, api
):
    _, output = workers.start("only")

    # Transactional test: the submit's on_commit publish runs at its commit, in this context.
    with broker_unreachable():
        response = api.post(SUBMIT, BODY, format="json")
        assert response.status_code == 201, response.json()
        job = AnalysisJob.objects.get(pk=response.json()["job_id"])
        assert (job.status, job.dispatched_at, job.celery_task_id) == ("queued", None, "")
    assert received(output) == []  # the publish failed: nothing was sent to any queue

    # The broker is back. Publish for real, to the worker's queue (whatever the context left).
    conf = celery_app.conf
    conf.task_always_eager, conf.task_default_queue = False, workers.queue

    assert dispatch()["published"] == [str(job.pk)]
    job = current(job)
    assert job.dispatched_at is not None
    task_id = job.celery_task_id
    assert task_id

    world = SandboxWorld(sandbox_ready, job)
    wait_until(
        lambda: deployment_of_attempt(world, task_id), 60, f"the Deployment of attempt {task_id}"
    )
    assert world.start_pod()
    world.profile("ready")  # learning: the worker keeps polling in ``observe``
    wait_until(lambda: current(job).status == "analyzing", 60, "the job analyzing")
    job = finish_scan(world, output, job, attempts=1)
    assert [line for line in received(output) if task_id in line] == received(output)
    assert len(received(output)) == 1, received(output)
    assert deployment_requests(world).count("create") == 1, deployment_requests(world)

    # Published once, and never again.
    assert dispatch() == {
        "lost": [],
        "pending": [],
        "published": [],
        "failed": [],
        "dry_run": False,
    }
    wait_until(lambda: world.remaining() == [], 30, "the attempt's cleanup")
    collect_garbage(world)
    assert reconcile_dry_run()["deleted"] == []
