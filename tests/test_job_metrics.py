"""Job, Kubernetes and VEX metrics (issue 14): moved by what really happens, read as scraped.

In-process cases read prometheus_client's default registry before and after; job events count
when their transaction commits, so they run the on-commit callbacks. The last case has a real
Celery worker write multiprocess files, and /metrics serves their sum.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from analysis import jobs
from analysis.dispatch import PUBLISHED, publish
from analysis.exceptions import QuotaExceededError
from analysis.imports import import_results
from analysis.metrics import JobCollector, classify_request
from analysis.models import AnalysisJob
from analysis.profiles import normalize_config
from analysis.results import Evidence
from analysis.sandbox import slots
from analysis.sandbox.pipeline import PHASES
from analysis.sandbox.reconcile import reconcile_sandboxes
from tests.conftest import REPO, make_job
from tests.support.processes import WORKER_ENV, start_celery_worker
from tests.support.sandbox_world import SandboxWorld
from tests.support.settings import override_reliability, small_pipeline_budgets
from tests.test_api_import import SMALL_FULL, SMALL_RELEVANT, small_import
from tests.test_pipeline import run_pipeline, sandbox_job
from tests.test_reconcile import job_with_sandbox
from vexxy.celery import app as celery_app

pytestmark = pytest.mark.django_db

VEX_STATUSES = ("not_affected", "affected", "fixed", "under_investigation")


def value(name: str, registry: CollectorRegistry = REGISTRY, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


class Deltas:
    """Sample values now, to compare with those after."""

    def __init__(self, *samples: tuple[str, dict[str, str]]) -> None:
        self.samples = samples
        self.before = [value(name, **labels) for name, labels in samples]

    def __call__(self) -> list[float]:
        after = [value(name, **labels) for name, labels in self.samples]
        return [a - b for a, b in zip(after, self.before, strict=True)]


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run what is deferred to the commit: the test's own transaction never commits."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


# -- imports and submissions ---------------------------------------------------------------


def test_an_import_counts_a_submission_a_completion_and_its_statements(
    api, committed, sandbox_disabled
):
    deltas = Deltas(
        ("vexxy_jobs_submitted_total", {"profile": "custom", "origin": "import"}),
        ("vexxy_jobs_completed_total", {"profile": "custom"}),
        ("vexxy_job_duration_seconds_count", {"profile": "custom"}),
        ("vexxy_vex_build_duration_seconds_count", {}),
        *[("vexxy_vex_statements_per_job_count", {"status": s}) for s in VEX_STATUSES],
        *[("vexxy_vex_statements_per_job_sum", {"status": s}) for s in VEX_STATUSES],
        ("vexxy_vex_statements_per_job_bucket", {"status": "not_affected", "le": "1.0"}),
        ("vexxy_vex_statements_per_job_bucket", {"status": "not_affected", "le": "5.0"}),
    )
    with committed():
        response = api.post("/api/v1/analysis/import", small_import(), format="json")
    assert response.status_code == 201, response.json()
    # one document: one observation per status, 1 affected and 3 not_affected statements
    assert deltas() == [1, 1, 1, 1, *[1, 1, 1, 1], *[3, 1, 0, 0], 0, 1]


def test_a_rolled_back_import_counts_nothing(organization, committed):
    deltas = Deltas(
        ("vexxy_jobs_submitted_total", {"profile": "custom", "origin": "import"}),
        ("vexxy_jobs_completed_total", {"profile": "custom"}),
        ("vexxy_vex_statements_per_job_count", {"status": "affected"}),
    )
    with committed(), transaction.atomic():
        import_results(
            organization,
            "docker.io/library/nginx:1.13",
            "sha256:" + "3" * 64,
            Evidence(SMALL_FULL, SMALL_RELEVANT),
            completion="complete",
            submitted_by="test",
        )
        transaction.set_rollback(True)
    assert deltas() == [0, 0, 0]


def test_a_sandbox_submission_counts_once_committed(
    organization, sandbox_ready, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr(jobs, "dispatch_on_commit", lambda job_id: None)  # not run here
    deltas = Deltas(("vexxy_jobs_submitted_total", {"profile": "minimal", "origin": "sandbox"}))
    data = {
        "image_ref": "docker.io/library/nginx:1.25",
        "image_digest": "sha256:" + "a" * 64,
        "profile": "minimal",
        "config": normalize_config("minimal", {}),
    }
    with django_capture_on_commit_callbacks() as callbacks:
        jobs.submit(organization, data, "test")
    assert deltas() == [0]  # not before the commit
    for callback in callbacks:
        callback()
    assert deltas() == [1]


def test_quota_refusals_are_counted(organization, sandbox_ready, committed):
    organization.monthly_analysis_quota = 0
    organization.save()
    deltas = Deltas(
        ("vexxy_quota_refusals_total", {"quota_type": "monthly_analyses"}),
        ("vexxy_jobs_submitted_total", {"profile": "minimal", "origin": "sandbox"}),
    )
    data = {"image_ref": "x", "image_digest": "sha256:" + "a" * 64, "profile": "minimal"}
    with committed(), pytest.raises(QuotaExceededError):
        jobs.submit(organization, {**data, "config": {}}, "test")
    assert deltas() == [1, 0]


# -- the sandbox pipeline and the Kubernetes API -------------------------------------------

PATH = re.compile(
    r"^/(?:api/v1|apis/[^/]+/[^/]+)(?:/namespaces/[^/]+)?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?"
)
VERBS = {"POST": "create", "DELETE": "delete", "PATCH": "patch", "PUT": "update"}


def expected_kind(method: str, path: str, query: dict[str, str]) -> tuple[str, str]:
    """The test's own reading of a request the double logged."""
    if path.rstrip("/") == "/version":
        return "get", "version"
    match = PATH.match(path)
    assert match, path
    if method != "GET":
        return VERBS[method], match["resource"]
    if match["name"]:
        return "get", match["resource"]
    return ("watch" if query.get("watch") in ("true", "1") else "list"), match["resource"]


def kubernetes_counts() -> Counter:
    counts: Counter = Counter()
    for family in REGISTRY.collect():
        if family.name == "vexxy_kubernetes_requests":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    labels = sample.labels
                    counts[(labels["verb"], labels["resource"], labels["status"])] += sample.value
    return counts


def by_kind(counted: Counter) -> Counter:
    """(verb, resource) -> requests, whatever their status."""
    kinds: Counter = Counter()
    for (verb, resource, _), n in counted.items():
        kinds[(verb, resource)] += n
    return kinds


@pytest.fixture
def world(sandbox_ready, organization, settings):
    small_pipeline_budgets(settings)
    return SandboxWorld(sandbox_ready, sandbox_job(organization))


def phase_counts() -> dict[str, float]:
    return {p: value("vexxy_job_phase_duration_seconds_count", phase=p) for p in PHASES}


def test_a_failed_run_counts_its_error_code_duration_phases_and_requests(world, committed):
    world.script(lambda: world.start_pod("ImagePullBackOff"))
    deltas = Deltas(
        ("vexxy_jobs_failed_total", {"profile": "custom", "error_code": "INVALID_IMAGE"}),
        ("vexxy_jobs_completed_total", {"profile": "custom"}),
        ("vexxy_job_duration_seconds_count", {"profile": "custom"}),
        ("vexxy_job_phase_duration_seconds_sum", {"phase": "wait_ready"}),
    )
    phases, requests_before = phase_counts(), kubernetes_counts()
    logged_before = len(world.kube.requests)

    with committed():
        run_pipeline(world)

    assert world.job.error_code == "INVALID_IMAGE"
    failed, completed, durations, waited = deltas()
    assert (failed, completed, durations) == (1, 0, 1)
    assert 0 < waited <= world.clock.now  # on the pipeline's clock: the polls' sleeps
    after = phase_counts()
    assert {p: after[p] - phases[p] for p in PHASES} == {
        "preflight": 1,
        "deploy": 1,
        "wait_ready": 1,
        "observe": 0,
        "collect": 0,
        "build": 0,
    }
    logged = world.kube.requests[logged_before:]
    counted = kubernetes_counts() - requests_before
    assert sum(counted.values()) == len(logged)
    assert by_kind(counted) == Counter(expected_kind(r.method, r.path, r.query) for r in logged)
    assert counted[("create", "deployments", "201")] == 1
    assert counted[("delete", "deployments", "200")] == 1


def test_request_statuses_count_each_attempt_and_a_completed_run_its_vex(world, committed):
    world.kube.fail("apps/v1/deployments", 500, method="POST", times=2)
    world.script(*world.happy())
    deltas = Deltas(
        ("vexxy_jobs_completed_total", {"profile": "custom"}),
        ("vexxy_vex_statements_per_job_sum", {"status": "affected"}),
        ("vexxy_vex_build_duration_seconds_count", {}),
        *[("vexxy_job_phase_duration_seconds_count", {"phase": p}) for p in PHASES],
    )
    before, logged_before = kubernetes_counts(), len(world.kube.requests)

    with committed():
        assert run_pipeline(world) is None

    assert world.job.status == "complete", world.job.error_details
    assert deltas() == [1, 1, 1, *[1] * len(PHASES)]
    counted = kubernetes_counts() - before
    assert counted[("create", "deployments", "500")] == 2  # each attempt is a request
    assert counted[("create", "deployments", "201")] == 1
    logged = world.kube.requests[logged_before:]
    assert by_kind(counted) == Counter(expected_kind(r.method, r.path, r.query) for r in logged)


def test_an_unreachable_cluster_counts_error_requests(unreachable_cluster):
    from analysis.sandbox.checks import check_kubernetes

    before = kubernetes_counts()
    check_kubernetes()
    counted = kubernetes_counts() - before
    assert counted
    assert {status for _, _, status in counted} == {"error"}


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("GET", "https://k/api/v1/namespaces/sb/pods?labelSelector=a", ("list", "pods")),
        ("GET", "https://k/api/v1/namespaces/sb/pods?watch=true", ("watch", "pods")),
        ("GET", "https://k/api/v1/namespaces/sb/pods/p1/log?tailLines=5", ("get", "pods")),
        ("GET", "https://k/api/v1/namespaces/sb", ("get", "namespaces")),
        ("POST", "https://k/apis/apps/v1/namespaces/sb/deployments", ("create", "deployments")),
        ("PATCH", "https://k/apis/apps/v1/namespaces/sb/deployments/d", ("patch", "deployments")),
        (
            "DELETE",
            "https://k/apis/spdx.softwarecomposition.kubescape.io/v1beta1/namespaces/k/"
            "containerprofiles/x",
            ("delete", "containerprofiles"),
        ),
        (
            "GET",
            "https://k/apis/apiregistration.k8s.io/v1/apiservices/v1.x",
            ("get", "apiservices"),
        ),
        ("GET", "https://k/version/", ("get", "version")),
        ("GET", "https://k/apis/apps/v1", ("get", "discovery")),
    ],
)
def test_requests_are_named_by_verb_and_plural(method, url, expected):
    assert classify_request(method, url) == expected


def test_the_reconciler_sets_the_objects_it_found(organization, sandbox_ready):
    done = job_with_sandbox(organization, sandbox_ready, "complete")
    found = reconcile_sandboxes(dry_run=True)
    assert len(found["deleted"]) >= 3
    assert value("vexxy_sandbox_objects_left") == len(found["deleted"])
    reconcile_sandboxes()
    assert done.remaining() == []
    reconcile_sandboxes()
    assert value("vexxy_sandbox_objects_left") == 0


# -- read from the database at scrape time -------------------------------------------------


@pytest.fixture
def scrape() -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(JobCollector())
    return registry


def test_the_collector_counts_undispatched_jobs_and_the_oldest_heartbeat(
    organization, scrape, settings
):
    now, old = timezone.now(), timezone.now() - timedelta(minutes=5)
    lost = now - timedelta(seconds=settings.DISPATCH_LOST_AFTER_SECONDS + 60)
    make_job(organization, updated_at=old)  # never published
    make_job(organization, updated_at=now)  # its on_commit publish may still come
    make_job(organization, dispatched_at=lost, celery_task_id="t1")  # published, lost
    make_job(organization, dispatched_at=now, celery_task_id="t2")  # published, waits
    make_job(organization, status="failed", updated_at=old)
    make_job(organization, status="running", heartbeat_at=now - timedelta(seconds=100))
    make_job(organization, status="analyzing", heartbeat_at=now - timedelta(seconds=30))
    make_job(organization, status="complete", heartbeat_at=now - timedelta(days=3))

    assert value("vexxy_jobs_undispatched", scrape) == 2
    assert 100 <= value("vexxy_running_jobs_oldest_heartbeat_age_seconds", scrape) < 130


def test_the_collector_reads_the_sandbox_slots(organization, scrape, settings):
    settings.MAX_CONCURRENT_SANDBOXES = 3
    assert slots.acquire(uuid.uuid4(), "run-1")
    make_job(organization, current_phase=slots.WAITING_PHASE)
    make_job(organization, current_phase=slots.WAITING_PHASE, status="cancelled")

    assert value("vexxy_sandbox_slots_in_use", scrape) == 1
    assert value("vexxy_sandbox_slots_limit", scrape) == 3
    assert value("vexxy_jobs_waiting_for_sandbox_slot", scrape) == 1


def test_no_running_job_is_an_age_of_zero(organization, scrape):
    assert scrape.get_sample_value("vexxy_running_jobs_oldest_heartbeat_age_seconds") == 0
    assert scrape.get_sample_value("vexxy_jobs_undispatched") == 0


DATABASE_GAUGES = (
    "vexxy_jobs_undispatched",
    "vexxy_running_jobs_oldest_heartbeat_age_seconds",
    "vexxy_sandbox_slots_in_use",
    "vexxy_sandbox_slots_limit",
    "vexxy_jobs_waiting_for_sandbox_slot",
)


def test_a_database_failure_gives_no_sample_and_one_warning(organization, scrape, caplog):
    def down(execute, sql, params, many, context):
        raise OperationalError("server closed the connection unexpectedly")

    with caplog.at_level(logging.WARNING, logger="analysis.metrics"):
        with connection.execute_wrapper(down):
            for _ in range(2):
                for name in DATABASE_GAUGES:
                    assert scrape.get_sample_value(name) is None, name
        warned = [r.getMessage() for r in caplog.records if r.name == "analysis.metrics"]
        # one per read, not one per scrape (the three slot gauges come from one read)
        assert len(warned) == 3, warned
        assert scrape.get_sample_value("vexxy_jobs_undispatched") == 0  # back


# -- a real worker -------------------------------------------------------------------------


@pytest.fixture
def metrics_worker(child_env, tmp_path: Path) -> Iterator[tuple[str, Path, object]]:
    """A real worker with a multiprocess metrics directory, fed by this process's publishes."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    queue = f"test-metrics-{uuid.uuid4().hex[:8]}"
    env = {
        **child_env,
        **WORKER_ENV,
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "SANDBOX_ENABLED": "false",
    }
    conf = celery_app.conf
    saved = (conf.task_always_eager, conf.task_default_queue)
    conf.task_always_eager, conf.task_default_queue = False, queue
    process, output = start_celery_worker(queue, queue, env, REPO)
    try:
        yield queue, directory, output
    finally:
        conf.task_always_eager, conf.task_default_queue = saved
        process.terminate()
        process.wait(timeout=30)


def scraped(client, directory: Path, monkeypatch, settings) -> dict[tuple, float]:
    """``/metrics`` as Prometheus reads it, aggregating ``directory``: {(name, labels): value}."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    override_reliability(settings, METRICS_COLLECTORS=["analysis.metrics.JobCollector"])
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


@pytest.mark.timeout(180)
def test_a_task_run_by_a_real_worker_moves_the_scraped_job_metrics(
    metrics_worker, organization, settings, client, monkeypatch
):
    settings.SANDBOX_ENABLED = False
    _, directory, output = metrics_worker
    job = make_job(organization, profile="minimal")
    before = scraped(client, directory, monkeypatch, settings)
    assert before[("vexxy_jobs_undispatched", ())] == 0  # the collector, on the shared database

    assert publish(job.pk) == PUBLISHED
    task_id = AnalysisJob.objects.get(pk=job.pk).celery_task_id
    output.wait_for(lambda line: task_id in line and "succeeded" in line, timeout=90)

    job.refresh_from_db()
    assert (job.status, job.error_code) == ("failed", "SERVICE_UNAVAILABLE")
    after = scraped(client, directory, monkeypatch, settings)
    failed = ("vexxy_jobs_failed_total", (("error_code", job.error_code), ("profile", "minimal")))
    duration = ("vexxy_job_duration_seconds_count", (("profile", "minimal"),))
    preflight = ("vexxy_job_phase_duration_seconds_count", (("phase", "preflight"),))
    deploy = ("vexxy_job_phase_duration_seconds_count", (("phase", "deploy"),))
    assert (failed, duration, preflight) not in before
    assert (after[failed], after[duration], after[preflight]) == (1, 1, 1)
    assert deploy not in after  # failed in preflight: the sandbox is off
    assert ("vexxy_jobs_completed_total", (("profile", "minimal"),)) not in after
    assert after[("vexxy_running_jobs_oldest_heartbeat_age_seconds", ())] == 0
