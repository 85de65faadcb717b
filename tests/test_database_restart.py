"""PostgreSQL restarts while a real worker runs a job: the job still finishes, the worker serves on.

It needs a PostgreSQL server the test may restart: ``.ci/run`` starts one and says how to restart
it in ``VEXXY_TEST_PG_RESTART``.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from django.db import connection

from analysis.dispatch import PUBLISHED, publish
from analysis.models import VexDocument
from reliability.correlation import correlation_scope
from reliability.tasks import echo_request_id
from tests.support.real_workers import (
    collect_garbage,
    current,
    reconcile_dry_run,
    run_until_observing,
)
from tests.support.sandbox_world import SandboxWorld

pytestmark = pytest.mark.slow

RESTART = os.environ.get("VEXXY_TEST_PG_RESTART")


@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("crash_settings")
def test_a_job_survives_a_database_restart_and_the_worker_keeps_serving(
    workers, sandbox_ready, job
):
    if connection.vendor != "postgresql" or not RESTART:
        pytest.skip(
            "needs a PostgreSQL server this test may restart (CI provides one and "
            "VEXXY_TEST_PG_RESTART)"
        )
    world = SandboxWorld(sandbox_ready, job)
    assert publish(job.pk) == PUBLISHED
    process, output = run_until_observing(world, workers, "pg")

    subprocess.run(RESTART, shell=True, check=True, timeout=60)  # noqa: S602 - CI's own command
    connection.close()  # this process's connection died with the server too

    world.completed()
    world.publish()
    output.wait_for(lambda line: f"Job {job.pk} complete" in line, timeout=90)
    assert current(job).status == "complete"
    assert VexDocument.objects.filter(job=job).count() == 1

    with correlation_scope("after-restart"):
        echo_request_id.apply_async(queue=workers.queue)
    output.wait_for(
        lambda line: "echo_request_id ran" in line and "after-restart" in line, timeout=60
    )
    assert process.poll() is None  # the same worker, still serving
    collect_garbage(world)
    assert reconcile_dry_run()["deleted"] == []
