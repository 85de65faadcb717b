"""Many workers, exactly once: two web processes and three real Celery workers take 30 jobs
with ``MAX_CONCURRENT_SANDBOXES=4`` against the Kubernetes API double; one worker is killed
while it runs a job.

Everything a deployment runs is real here except the cluster: gunicorn serves the API (with
``SANDBOX_HEALTH_FROM_WORKERS``, as web pods without a service-account token do), the workers
run the pipeline over HTTP against the double, and this test plays the rest of the cluster:
the controllers that start each Deployment's pod, Kubescape (which profiles a pod for
``PROFILE_SECONDS`` and then publishes its scan), the garbage collector, and beat's stale-job
recovery. The double's request log is the record of which sandboxes existed when.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.conf import settings as django_settings
from kubernetes import client

from analysis.api_keys import issue_key
from analysis.dispatch import lost_publishes, pending_jobs, publish, release
from analysis.models import AnalysisJob, SandboxSlot, VexDocument
from analysis.recovery import recover_stale_jobs
from analysis.sandbox import manifests
from analysis.sandbox.client import api_client
from analysis.sandbox.reconcile import reconcile_sandboxes
from analysis.status import RUNNING
from tests.support.live_server import LiveServer, start_gunicorn, stop
from tests.support.processes import WORKER_ENV
from tests.support.queues import published_to
from tests.support.real_workers import Workers, reconcile_dry_run, wait_until
from tests.support.sandbox_world import IMAGE_DIGEST, IMAGE_REF, SandboxWorld

JOBS, WORKERS, THREADS, LIMIT = 30, 3, 2, 4
PROFILE_SECONDS = 1.5  # Kubescape's learning, as long as it takes a worker to be caught in it
STALE_AFTER = 5.0  # heartbeats come every second; a loaded host may delay a few
LOST_AFTER = 30.0  # published, never claimed: a message the killed worker took along
SANDBOX = django_settings.K8S_SANDBOX_NAMESPACE
DEPLOYMENTS_PATH = f"/apis/apps/v1/namespaces/{SANDBOX}/deployments"


@dataclass
class Played:
    """What this test, as the cluster, did for one run's Deployment."""

    attempt: str
    pod_started: float
    scanned: bool = False


class Cluster:
    """The controllers, Kubescape and the garbage collector, one step per call."""

    def __init__(self, kube, jobs: list[AnalysisJob]) -> None:
        self.kube = kube
        self.worlds = {SandboxWorld(kube, job).name: SandboxWorld(kube, job) for job in jobs}
        self.played: dict[str, Played] = {}
        self.apps = client.AppsV1Api(api_client())
        self.core = client.CoreV1Api(api_client())

    def step(self) -> None:
        deployments = {
            d.metadata.name: (d.metadata.labels or {}).get(manifests.ATTEMPT_LABEL, "")
            for d in self.apps.list_namespaced_deployment(SANDBOX).items
        }
        now = time.monotonic()
        for name, attempt in deployments.items():
            world, played = self.worlds[name], self.played.get(name)
            if played is None or played.attempt != attempt:
                world.start_pod()
                world.profile("ready")
                self.played[name] = Played(attempt, now)
            elif not played.scanned and now - played.pod_started >= PROFILE_SECONDS:
                world.completed()
                world.publish()
                played.scanned = True
        pods = {pod.metadata.name for pod in self.core.list_namespaced_pod(SANDBOX).items}
        for world in self.worlds.values():
            if world.pod_name in pods and world.name not in deployments:
                self.collect_garbage(world)

    def collect_garbage(self, world: SandboxWorld) -> None:
        self.core.delete_namespaced_pod(world.pod_name, SANDBOX)
        self.apps.delete_namespaced_replica_set(world.rs_name, SANDBOX)
        self.played.pop(world.name, None)


def sandboxes_over_time(kube) -> tuple[int, Counter]:
    """From the double's log: the most Deployments alive at once, and creates per name."""
    alive: set[str] = set()
    peak, creates = 0, Counter()
    for request in kube.requests:
        if (request.method, request.path) == ("POST", DEPLOYMENTS_PATH):
            name = request.body["metadata"]["name"]
            creates[name] += 1
            alive.add(name)
            peak = max(peak, len(alive))
        elif request.method == "DELETE" and request.path.startswith(DEPLOYMENTS_PATH + "/"):
            alive.discard(request.path.rsplit("/", 1)[1])
    return peak, creates


@pytest.fixture
def queue() -> Iterator[str]:
    """This test's queue; this process publishes there too (recovery, dispatch)."""
    with published_to(f"test-many-{os.getpid()}-{uuid.uuid4().hex[:8]}") as name:
        yield name


@pytest.fixture
def service_env(child_env, sandbox_ready, queue, settings) -> dict[str, str]:
    settings.MAX_CONCURRENT_SANDBOXES = LIMIT
    settings.ANALYSIS_SETUP_ALLOWANCE_SECONDS = 60
    settings.K8S_MAX_ATTEMPTS = 3
    return {
        **child_env,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "MAX_CONCURRENT_SANDBOXES": str(LIMIT),
        "SANDBOX_ENABLED": "true",
        "ANALYSIS_SETUP_ALLOWANCE_SECONDS": "60",
    }


@pytest.fixture
def worker_pool(service_env, sandbox_ready, queue) -> Iterator[Workers]:
    env = {
        **service_env,
        **WORKER_ENV,
        "K8S_IN_CLUSTER": "false",
        "KUBECONFIG": str(sandbox_ready.kubeconfig),
        "SANDBOX_POLL_MAX_SECONDS": "1",
        "KUBESCAPE_SETTLE_SECONDS": "0",
        "K8S_MAX_ATTEMPTS": "3",
    }
    pool = Workers(env, queue, pool="threads", concurrency=THREADS)
    try:
        for n in range(WORKERS):
            pool.start(f"many{n}")
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture
def web(service_env) -> Iterator[list[LiveServer]]:
    """Two web processes with no cluster credentials: they read the workers' cluster health."""
    env = {key: value for key, value in service_env.items() if key != "KUBECONFIG"}
    overrides = {"SANDBOX_ENABLED": "true", "SANDBOX_HEALTH_FROM_WORKERS": "true"}
    servers: list[LiveServer] = []
    try:
        for _ in range(2):
            servers.append(start_gunicorn(env, overrides=overrides))
        yield servers
    finally:
        for server in servers:
            stop(server)


def submit(server: LiveServer, key: str) -> str:
    request = urllib.request.Request(  # noqa: S310 - the test's own server
        server.base_url + "/api/v1/analysis/submit",
        data=json.dumps({"image_ref": IMAGE_REF, "image_digest": IMAGE_DIGEST}).encode(),
        headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        assert response.status == 201
        return json.loads(response.read())["job_id"]


def cluster_reported_healthy(server: LiveServer) -> bool:
    with urllib.request.urlopen(server.base_url + "/health", timeout=30) as response:  # noqa: S310
        checks = json.loads(response.read())["checks"]
    return checks["kubernetes"]["status"] == checks["kubescape"]["status"] == "healthy"


def complete_count(job_ids: list[str]) -> int:
    return AnalysisJob.objects.filter(pk__in=job_ids, status="complete").count()


@pytest.mark.timeout(900)
def test_thirty_jobs_on_three_workers_complete_exactly_once_within_four_sandboxes(
    organization, sandbox_ready, worker_pool, web, capsys
):
    key = issue_key(organization, "many-workers").plaintext
    for server in web:
        wait_until(lambda s=server: cluster_reported_healthy(s), 60, "a worker's cluster report")

    started = time.monotonic()
    job_ids = [submit(web[n % 2], key) for n in range(JOBS)]
    cluster = Cluster(sandbox_ready, list(AnalysisJob.objects.filter(pk__in=job_ids)))
    victim, victim_output = worker_pool.started[0], worker_pool.outputs[0]
    killed_job = None
    recovered: set[str] = set()
    last_dispatch = 0.0

    deadline = time.monotonic() + 600
    while complete_count(job_ids) < JOBS:
        assert time.monotonic() < deadline, (
            f"{complete_count(job_ids)} of {JOBS} complete:\n{victim_output.text()}"
        )
        cluster.step()
        if killed_job is None and complete_count(job_ids) >= 6:
            killed_job = kill_while_running(victim, victim_output, job_ids)
        report = recover_stale_jobs(stale_after=STALE_AFTER)
        recovered.update(report["requeued"] + report["failed"])
        if time.monotonic() - last_dispatch > 5:
            dispatch_pending_jobs()
            last_dispatch = time.monotonic()
        time.sleep(0.25)  # the pace of the cluster's controllers; bounded by the deadline
    elapsed = time.monotonic() - started

    left: dict[str, object] = {}

    def nothing_left() -> bool:
        cluster.step()
        # Beat keeps running after the last job: its recovery, and its reconciler for what
        # Kubescape (this test) published for a sandbox the pipeline had just deleted.
        recover_stale_jobs(stale_after=STALE_AFTER)
        reconcile_sandboxes()
        left["slots"] = list(
            SandboxSlot.objects.exclude(task_id="").values_list("number", "job_id", "task_id")
        )
        left["objects"] = {n: w.remaining() for n, w in cluster.worlds.items() if w.remaining()}
        return not left["slots"] and not left["objects"]

    try:
        wait_until(nothing_left, 60, "every sandbox deleted and every slot free")
    except AssertionError as failed:
        raise AssertionError(f"{failed}; still there: {left}") from None
    peak, creates = sandboxes_over_time(sandbox_ready)
    jobs = {str(job.pk): job for job in AnalysisJob.objects.filter(pk__in=job_ids)}
    with capsys.disabled():  # the figures, in the suite's output even when it captures
        print(
            f"\nmany workers: {JOBS} jobs, {WORKERS} workers x {THREADS} threads, "
            f"MAX_CONCURRENT_SANDBOXES={LIMIT}: {JOBS / elapsed * 60:.1f} jobs/min "
            f"({elapsed:.1f} s), peak sandboxes {peak}, worker killed mid-job {killed_job}, "
            f"recovered {sorted(recovered)}"
        )

    assert killed_job is not None
    assert killed_job in recovered
    assert peak <= LIMIT
    assert peak == LIMIT  # the limit was reached, so it is what held the count down
    for job_id, job in jobs.items():
        assert (job.status, job.error_code) == ("complete", ""), job.error_details
        vex = VexDocument.objects.filter(job_id=job_id)
        assert vex.count() == 1
        assert job.generated_vex_id == vex.get().pk
        # One Deployment per run; only a run of the killed worker left its job a second one.
        assert creates[manifests.sandbox_name(job.pk)] == job.attempts
        assert job.attempts == (2 if job_id in recovered else 1)
    assert not AnalysisJob.objects.filter(pk__in=job_ids, status__in=RUNNING).exists()
    assert reconcile_dry_run()["deleted"] == []


def dispatch_pending_jobs() -> None:
    """Beat's fallback, with the killed worker's unstarted messages counted lost after
    LOST_AFTER seconds instead of DISPATCH_LOST_AFTER_SECONDS (hours)."""
    for job_id, task_id in lost_publishes(LOST_AFTER):
        release(job_id, task_id)
    for job_id in pending_jobs():
        publish(job_id)


def kill_while_running(victim, output, job_ids: list[str]) -> str | None:
    """SIGKILL the victim once a job it received is in the cluster (running or analyzing)."""
    received = [line for line in output.lines if "analysis.run_analysis[" in line]
    task_ids = {line.split("[", 1)[1].split("]", 1)[0] for line in received}
    running = AnalysisJob.objects.filter(
        pk__in=job_ids, status="analyzing", celery_task_id__in=task_ids
    ).first()
    if running is None:
        return None
    os.kill(victim.pid, signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    return str(running.pk)
