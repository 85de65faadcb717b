"""Real ``celery worker`` processes against the Kubernetes API double, for recovery tests.

The workers (filesystem broker locally, Redis in CI) share the test database and talk to the
double (tests/support/kube_api.py) over real HTTP while the test plays the cluster's controllers and
Kubescape (tests/support/sandbox_world.py). The tests observe other processes, so they wait on the
database and the double with short, deadline-bounded polls (``wait_until``), and on the
workers' log lines where they log one. The fixtures are registered in tests/conftest.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from kubernetes import client

from analysis.models import AnalysisJob, VexDocument
from analysis.profiles import normalize_config
from analysis.recovery import recover_stale_jobs
from analysis.sandbox import manifests
from analysis.sandbox.client import api_client
from tests.support.processes import WORKER_ENV, ProcessOutput, start_celery_worker
from tests.support.queues import published_to
from tests.support.sandbox_world import (
    DEPLOYMENTS,
    IMAGE_DIGEST,
    IMAGE_REF,
    PODS,
    REPLICASETS,
    SandboxWorld,
)

REPO = Path(__file__).resolve().parents[2]
DURATION = 60
STALE_AFTER = 2.0  # seconds without a heartbeat; the worker beats every second (poll interval)


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``condition`` (state of another process) every 0.2 s until truthy or the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.2)  # bounded by the deadline above; the other process needs time to act


class Workers:
    """Real ``celery worker`` processes consuming this test's queue, pointed at the double."""

    def __init__(
        self, env: dict[str, str], queue: str, *, pool: str = "solo", concurrency: int = 1
    ) -> None:
        self.env, self.queue = env, queue
        self.pool, self.concurrency = pool, concurrency
        self.started: list[subprocess.Popen] = []
        self.outputs: list[ProcessOutput] = []

    def start(self, name: str) -> tuple[subprocess.Popen, ProcessOutput]:
        hostname = f"{name}-{self.queue}"
        process, output = start_celery_worker(
            self.queue, hostname, self.env, REPO, pool=self.pool, concurrency=self.concurrency
        )
        self.started.append(process)
        self.outputs.append(output)
        return process, output

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.terminate()
        for process in self.started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def workers(child_env: dict[str, str], sandbox_ready, tmp_path: Path) -> Iterator[Workers]:
    """Workers on a queue of their own; this process publishes there, for real."""
    queue = f"test-crash-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    env = {
        **child_env,
        **WORKER_ENV,
        "SANDBOX_ENABLED": "true",
        "K8S_IN_CLUSTER": "false",
        "KUBECONFIG": str(sandbox_ready.kubeconfig),
        "SANDBOX_POLL_MAX_SECONDS": "1",
        "ANALYSIS_SETUP_ALLOWANCE_SECONDS": "60",
        "KUBESCAPE_SETTLE_SECONDS": "0",
        "K8S_MAX_ATTEMPTS": "3",
    }
    with published_to(queue):
        pool = Workers(env, queue)
        try:
            yield pool
        finally:
            pool.stop_all()


@pytest.fixture
def crash_settings(settings):
    """This process recovers the job and cleans up: the same budget as the workers."""
    settings.ANALYSIS_SETUP_ALLOWANCE_SECONDS = 60
    settings.K8S_MAX_ATTEMPTS = 3


@pytest.fixture
def job(organization) -> AnalysisJob:
    from tests.conftest import make_job  # conftest registers this module as a plugin

    return make_job(
        organization,
        image_ref=IMAGE_REF,
        image_digest=IMAGE_DIGEST,
        config=normalize_config("custom", {"analysis_duration": DURATION}),
    )


def current(job: AnalysisJob) -> AnalysisJob:
    job.refresh_from_db()
    return job


def deployment_of_attempt(world: SandboxWorld, task_id: str) -> dict | None:
    """The sandbox Deployment, once it is the one created under ``task_id``."""
    deployment = world.kube.get(DEPLOYMENTS, world.name, world.ns)
    labels = ((deployment or {}).get("metadata") or {}).get("labels") or {}
    return deployment if labels.get(manifests.ATTEMPT_LABEL) == task_id else None


def collect_garbage(world: SandboxWorld) -> None:
    """What the garbage collector does once the Deployment is gone (kmock has none)."""
    assert world.kube.get(DEPLOYMENTS, world.name, world.ns) is None
    client.CoreV1Api(api_client()).delete_namespaced_pod(world.pod_name, world.ns)
    client.AppsV1Api(api_client()).delete_namespaced_replica_set(world.rs_name, world.ns)
    assert world.kube.get(PODS, world.pod_name, world.ns) is None
    assert world.kube.get(REPLICASETS, world.rs_name, world.ns) is None


def run_until_observing(world: SandboxWorld, workers: Workers, name: str):
    """Start a worker; once its Deployment exists the pod comes up and Kubescape learns."""
    job = world.job
    process, output = workers.start(name)
    task_id = current(job).celery_task_id
    assert task_id
    wait_until(
        lambda: deployment_of_attempt(world, task_id), 60, f"the Deployment of attempt {task_id}"
    )
    assert world.start_pod()
    world.profile("ready")  # learning: the worker keeps polling in ``observe``
    wait_until(lambda: current(job).status == "analyzing", 60, "the job analyzing")
    return process, output


def kill(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


def recover(job: AnalysisJob) -> dict:
    """recover_stale_jobs, called until the dead worker's heartbeat is old enough."""

    def attempt() -> dict | None:
        report = recover_stale_jobs(stale_after=STALE_AFTER)
        return report if str(job.pk) in report["requeued"] + report["failed"] else None

    return wait_until(attempt, 30, "recover_stale_jobs to find the job stale")


def reconcile_dry_run() -> dict:
    out = StringIO()
    call_command("reconcile_sandboxes", "--dry-run", "--json", stdout=out)
    return json.loads(out.getvalue())


def deployment_requests(world: SandboxWorld) -> list[str]:
    collection = f"/apis/apps/v1/namespaces/{world.ns}/deployments"
    seen = []
    for request in world.kube.requests:
        if (request.method, request.path) == ("POST", collection):
            seen.append("create")
        elif (request.method, request.path) == ("DELETE", f"{collection}/{world.name}"):
            seen.append("delete")
    return seen


def finish_scan(
    world: SandboxWorld, output: ProcessOutput, job: AnalysisJob, attempts: int
) -> AnalysisJob:
    """Kubescape publishes its scan and completes the profile; the job completes with one VEX."""
    world.publish()
    world.completed()
    output.wait_for(lambda line: f"Job {job.pk} complete" in line, timeout=60)
    job = current(job)
    assert (job.status, job.error_code, job.attempts) == ("complete", "", attempts), (
        job.error_details
    )
    assert VexDocument.objects.filter(job=job).count() == 1
    assert job.generated_vex_id == VexDocument.objects.get(job=job).pk
    return job
