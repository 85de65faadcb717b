"""The sandbox pipeline end to end, against the Kubernetes API double over real HTTP.

Nothing of ours is patched: the world (tests/support/sandbox_world.py) plays the controllers and
Kubescape, driven by the pipeline's own sleeps on a fake clock. Task-level cases call the Celery
task as eager mode does; it uses the real clock, so its world is seeded before it runs.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections import Counter
from pathlib import Path

import pytest
from celery.exceptions import Retry, SoftTimeLimitExceeded
from django.conf import settings as django_settings
from jsonschema import Draft202012Validator

from analysis import jobs
from analysis.models import AnalysisJob, VexDocument
from analysis.profiles import normalize_config
from analysis.sandbox import manifests
from analysis.sandbox.pipeline import JobCancelled, Pipeline
from analysis.tasks import run_analysis
from reliability.circuit import forget_breakers, get_breaker
from tests.conftest import make_job
from tests.support.sandbox_world import (
    DEPLOYMENTS,
    FULL_CONTENT,
    IMAGE_DIGEST,
    IMAGE_ID,
    IMAGE_REF,
    MANIFESTS,
    NETWORK_POLICIES,
    PODS,
    PROFILES,
    SandboxWorld,
    when_evidence_is_stored,
)
from tests.support.settings import override_reliability

pytestmark = pytest.mark.django_db

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "analysis" / "vex" / "openvex_json_schema.json").read_text()
)
DURATION = 60
BUDGET = DURATION + 60  # ANALYSIS_SETUP_ALLOWANCE_SECONDS below
SANDBOX = django_settings.K8S_SANDBOX_NAMESPACE
AFFECTED = {("CVE-2007-6755", "libssl1.1")}  # the one match of nginx-relevant-small.json


@pytest.fixture(autouse=True)
def small_budgets(settings):
    settings.ANALYSIS_SETUP_ALLOWANCE_SECONDS = BUDGET - DURATION
    settings.SANDBOX_POLL_MAX_SECONDS = 5
    settings.KUBESCAPE_SETTLE_SECONDS = 30
    settings.K8S_MAX_ATTEMPTS = 3
    # retry back-off waits 0 s, also with the real clock
    override_reliability(settings, DEFAULT_INITIAL_DELAY=0, DEFAULT_MAX_DELAY=10)


@pytest.fixture
def task_settings(settings):
    """The task sleeps for real: nothing may need to settle."""
    settings.KUBESCAPE_SETTLE_SECONDS = 0


def sandbox_job(organization, job_id: uuid.UUID | None = None) -> AnalysisJob:
    """A job of the world's image, observed for DURATION seconds, already published."""
    return make_job(
        organization,
        id=job_id or uuid.uuid4(),
        image_ref=IMAGE_REF,
        image_digest=IMAGE_DIGEST,
        celery_task_id=f"task-{uuid.uuid4()}",
        config=normalize_config("custom", {"analysis_duration": DURATION}),
    )


@pytest.fixture
def job(organization):
    return sandbox_job(organization)


@pytest.fixture
def world(sandbox_ready, job):
    return SandboxWorld(sandbox_ready, job)


def run_pipeline(world: SandboxWorld) -> BaseException | None:
    """Claim and run the job on the world's clock; a failure is recorded as the task does."""
    job = world.job
    assert jobs.claim(job, job.celery_task_id)
    try:
        Pipeline(job, clock=world.clock).run()
    except JobCancelled as cancelled:
        return cancelled
    except Exception as error:
        jobs.fail(job, error)
        return error
    finally:
        job.refresh_from_db()
    return None


def run_task(job: AnalysisJob) -> None:
    run_analysis.apply(args=[str(job.pk)], task_id=job.celery_task_id)
    job.refresh_from_db()


def requests_to(kube, method: str, path: str) -> list:
    return [r for r in kube.requests if (r.method, r.path) == (method, path)]


def deployments_path() -> str:
    return f"/apis/apps/v1/namespaces/{SANDBOX}/deployments"


def assert_complete(world: SandboxWorld) -> None:
    job = world.job
    assert (job.status, job.error_code) == ("complete", ""), job.error_details
    vex = VexDocument.objects.get(job=job)
    assert job.generated_vex_id == vex.pk
    Draft202012Validator(SCHEMA).validate(vex.document)
    statuses = {
        (r["cve_id"], r["package_name"]): r["status"]
        for r in job.results.values_list("data", flat=True)
    }
    assert statuses == {
        (m["vulnerability"]["id"], m["artifact"]["name"]): "affected"
        if (m["vulnerability"]["id"], m["artifact"]["name"]) in AFFECTED
        else "not_affected"
        for m in FULL_CONTENT["matches"]
    }
    evidence = {e.evidence_type: json.loads(e.data) for e in job.evidence.all()}
    assert set(evidence) == {"full_manifest", "relevant_manifest"}
    assert evidence["full_manifest"]["metadata"]["name"] == world.image_slug
    relevant = evidence["relevant_manifest"]["metadata"]
    assert (relevant["name"], relevant["annotations"]["kubescape.io/instance-id"]) == (
        world.slug,
        world.instance.instance_id,
    )
    assert_cleaned_up(world)


def assert_failed(world: SandboxWorld, code: str) -> dict:
    job = world.job
    assert (job.status, job.error_code) == ("failed", code), job.error_details
    assert not VexDocument.objects.filter(job=job).exists()
    assert_cleaned_up(world)
    return job.error_details


def assert_cleaned_up(world: SandboxWorld) -> None:
    assert world.remaining() == []
    # The image's full manifest is shared with every workload of the image: it stays.
    if world.published:
        assert world.kube.get(MANIFESTS, world.image_slug, world.ks) is not None


# -- happy path, decoys, request count ---------------------------------------------------------


def test_environment_values_travel_in_a_secret_that_cleanup_removes(world):
    AnalysisJob.objects.filter(pk=world.job.pk).update(
        config=normalize_config(
            "custom", {"analysis_duration": DURATION, "environment": {"TOKEN": "s3cr3t"}}
        )
    )
    world.job.refresh_from_db()
    world.script(*world.happy())

    assert run_pipeline(world) is None

    assert_complete(world)
    (deployment,) = requests_to(world.kube, "POST", deployments_path())
    assert "s3cr3t" not in json.dumps(deployment.body)
    (secret,) = requests_to(world.kube, "POST", f"/api/v1/namespaces/{SANDBOX}/secrets")
    assert secret.body["stringData"] == {"TOKEN": "s3cr3t"}
    assert world.kube.get("v1/secrets", f"{world.name}-env", SANDBOX) is None


def test_happy_path_completes_with_a_valid_vex(world):
    world.script(*world.happy())

    assert run_pipeline(world) is None

    assert_complete(world)
    created = requests_to(world.kube, "POST", deployments_path())
    assert len(created) == 1
    container = created[0].body["spec"]["template"]["spec"]["containers"][0]
    assert (container["name"], container["image"]) == ("target", IMAGE_ID)  # by digest
    # The early partial scan was not taken: the manifest rewritten after completion was.
    assert world.job.summary["loaded_components"] == 1


def test_every_digest_of_the_image_is_a_product_and_the_notes_give_the_window(world):
    """Submitted by its index digest, run by the platform digest the kubelet reports."""
    index = "sha256:" + "1a" * 32
    AnalysisJob.objects.filter(pk=world.job.pk).update(image_digest=index)
    world.job.refresh_from_db()
    world.script(*world.happy())

    assert run_pipeline(world) is None

    assert_complete(world)
    assert world.job.image_digests == [index, IMAGE_DIGEST]
    statements = VexDocument.objects.get(job=world.job).document["statements"]
    assert {tuple(p["hashes"]["sha-256"] for p in s["products"]) for s in statements} == {
        (index[7:], IMAGE_DIGEST[7:])
    }
    assert {
        r["reason"].split(" was ")[1].split(";")[0].split(",")[0]
        for r in world.job.results.values_list("data", flat=True)
    } == {
        f"not loaded during {DURATION} s of observed execution",
        f"loaded during {DURATION} s of observed execution",
    }
    # The CycloneDX form is built by the worker, not by the first download.
    bom = VexDocument.objects.get(job=world.job).cyclonedx
    assert bom["metadata"]["component"]["version"] == index
    assert len(bom["vulnerabilities"]) == len(statements)


def test_a_cyclonedx_failure_leaves_the_job_complete_and_says_so(world, monkeypatch, log_records):
    def broken(*args):
        raise RuntimeError("converter bug")

    monkeypatch.setattr("analysis.models.cyclonedx_vex", broken)
    world.script(*world.happy())

    assert run_pipeline(world) is None

    assert_complete(world)
    vex = VexDocument.objects.get(job=world.job)
    assert vex.cyclonedx is None  # built by the first download instead
    [record] = [r for r in log_records if r.getMessage().startswith("CycloneDX form of VEX")]
    assert (record.levelname, record.vex_id, record.exc_info[0]) == (
        "ERROR",
        str(vex.pk),
        RuntimeError,
    )


def test_decoys_are_never_read(world, organization):
    other = SandboxWorld(world.kube, sandbox_job(organization))
    other.start_pod("ImagePullBackOff", wait_for_deployment=False)  # another job's pod
    near = [world.slug + "-x", world.slug[:-4] + "0000"]  # contains ours / same hash prefix
    for name in near:
        world.profile("completed", name=name, instance_id=other.instance.instance_id)
        world.relevant(FULL_CONTENT, name=name, instance_id=other.instance.instance_id)
    world.full({**FULL_CONTENT, "matches": []}, name=world.image_slug + "x")

    def impostors() -> None:
        """Objects with exactly our names but another instance's identity, before ours."""
        world.profile("completed", instance_id=other.instance.instance_id)
        world.relevant(FULL_CONTENT, instance_id=other.instance.instance_id)

    world.script(world.start_pod, impostors, world.learning, world.completed, world.publish)

    assert run_pipeline(world) is None

    assert_complete(world)  # only our relevant manifest's one match is affected
    read = {request.path.rsplit("/", 1)[-1] for request in world.kube.requests}
    assert read.isdisjoint([*near, world.image_slug + "x", other.pod_name])
    assert world.kube.get(PODS, other.pod_name, SANDBOX) is not None
    assert all(world.kube.get(PROFILES, name, SANDBOX) for name in near)  # not deleted either


def test_requests_per_successful_analysis(world):
    world.script(*world.happy())
    before = len(world.kube.requests)

    assert run_pipeline(world) is None

    assert_complete(world)
    made = world.kube.requests[before:]
    breakdown = Counter(f"{r.method} {world.pattern(r.path)}" for r in made)
    print(f"\nrequests per successful analysis: {len(made)}")
    for line, count in sorted(breakdown.items()):
        print(f"  {count:3d}  {line}")
    assert len(made) < 60


# -- failures --------------------------------------------------------------------------------


def test_image_pull_backoff_fails_on_the_first_poll_that_sees_it(world):
    world.script(lambda: world.start_pod("ImagePullBackOff"))

    run_pipeline(world)

    details = assert_failed(world, "INVALID_IMAGE")
    assert details["reason"] == "ImagePullBackOff"
    assert world.clock.now <= django_settings.SANDBOX_POLL_MAX_SECONDS < BUDGET / 10
    # two polls, then cleanup's look for the pod's Kubescape identity
    assert len(requests_to(world.kube, "GET", f"/api/v1/namespaces/{SANDBOX}/pods")) == 3


def test_crash_loop_fails_with_the_pod_and_its_last_log_lines(world):
    world.serve_log("starting nginx\nemerg: bind() to 0.0.0.0:80 failed (13: Permission denied)\n")
    world.script(lambda: world.start_pod("CrashLoopBackOff"))

    run_pipeline(world)

    details = assert_failed(world, "SANDBOX_ERROR")
    assert (details["reason"], details["pod"]) == ("CrashLoopBackOff", world.pod_name)
    # The lines may echo secrets: kept as evidence (admin only), counted in the error.
    assert "logs" not in details
    assert details["log_lines"] == 2
    assert json.loads(world.job.evidence.get(evidence_type="sandbox_logs").data) == [
        "starting nginx",
        "emerg: bind() to 0.0.0.0:80 failed (13: Permission denied)",
    ]
    (log,) = requests_to(
        world.kube, "GET", f"/api/v1/namespaces/{SANDBOX}/pods/{world.pod_name}/log"
    )
    assert (log.query["container"], log.query["tailLines"]) == ("target", "50")


def test_kubescape_not_installed_fails_before_deploying_anything(kube_api, clean_cache, job):
    world = SandboxWorld(kube_api, job)

    run_pipeline(world)

    details = assert_failed(world, "KUBESCAPE_ERROR")
    assert "not found" in details["reason"]
    assert [r for r in kube_api.requests if r.method != "GET"] == []


def test_a_profile_that_never_completes_times_out_in_observe(world):
    world.script(world.start_pod, world.learning)  # then the profile stays "ready"

    run_pipeline(world)

    details = assert_failed(world, "ANALYSIS_TIMEOUT")
    assert (details["phase"], details["timeout_seconds"]) == ("observe", BUDGET)
    assert BUDGET <= world.clock.now < BUDGET + django_settings.SANDBOX_POLL_MAX_SECONDS
    assert max(world.clock.sleeps) <= django_settings.SANDBOX_POLL_MAX_SECONDS


def test_kubernetes_500s_that_recover_are_retried(world):
    world.kube.fail("apps/v1/deployments", 500, method="POST", times=2)
    world.script(*world.happy())

    assert run_pipeline(world) is None

    assert_complete(world)
    assert len(requests_to(world.kube, "POST", deployments_path())) == 3
    assert get_breaker("kubernetes").snapshot()["failures"] == 0


def test_retry_after_of_a_429_is_honoured_on_the_pipeline_clock(world):
    profile = (
        f"/apis/spdx.softwarecomposition.kubescape.io/v1beta1/namespaces/{SANDBOX}"
        f"/containerprofiles/{world.slug}"
    )
    world.kube.fail(profile, 429, times=1, retry_after=7)  # Kubescape storage: queue full
    world.script(*world.happy())

    assert run_pipeline(world) is None

    assert_complete(world)
    assert 7 in world.clock.sleeps  # the polls themselves never wait more than 5 s
    assert [s for s in world.clock.sleeps if s > django_settings.SANDBOX_POLL_MAX_SECONDS] == [7]


def test_cancel_during_the_wait_stops_the_run_and_removes_the_sandbox(world):
    def cancel() -> None:
        jobs.cancel(AnalysisJob.objects.get(pk=world.job.pk), "test")

    world.script(world.start_pod, world.learning, cancel, world.completed, world.publish)

    assert isinstance(run_pipeline(world), JobCancelled)

    assert world.plan == [world.completed, world.publish]  # stopped at the next checkpoint
    assert (world.job.status, world.job.cancelled_by, world.job.error_code) == (
        "cancelled",
        "test",
        "",
    )
    assert world.remaining() == []
    assert not VexDocument.objects.filter(job=world.job).exists()


# -- task level: transient retry, open circuit, soft time limit, redelivery ---------------------


def test_transient_failure_of_a_whole_attempt_is_retried_by_the_task(world, task_settings):
    world.kube.fail("apps/v1/deployments", 503, method="POST", times=3)  # = K8S_MAX_ATTEMPTS
    world.preseed()

    # Eager mode propagates the task's Retry; its signature is the message the broker
    # would deliver after the countdown.
    with pytest.raises(Retry) as retry:
        run_task(world.job)
    world.job.refresh_from_db()
    assert (world.job.status, world.job.error_code, retry.value.when) == (
        "queued",
        "KUBERNETES_ERROR",
        30,
    )
    assert [world.kube.get(kind, name, ns) for kind, ns, name in world.sandbox_objects()] == [
        None,
        None,
        None,
    ]  # the failed attempt removed its sandbox

    world.preseed()  # the next attempt's pod, profiled by Kubescape again
    retry.value.sig.apply()
    world.job.refresh_from_db()

    assert_complete(world)
    assert world.job.attempts == 2
    assert len(requests_to(world.kube, "POST", deployments_path())) == 4


def test_persistent_503s_open_the_circuit_and_the_next_job_fails_fast(
    world, organization, settings, task_settings
):
    breakers = django_settings.RELIABILITY["CIRCUIT_BREAKERS"]
    override_reliability(
        settings,
        CIRCUIT_BREAKERS={"kubernetes": {**breakers["kubernetes"], "failure_threshold": 2}},
    )
    settings.ANALYSIS_MAX_ATTEMPTS = 1
    settings.HEALTH_KUBERNETES_CACHE_SECONDS = 300  # the second job reuses the health checks
    forget_breakers()
    try:
        world.kube.fail("/apis/apps/*", 503)

        run_task(world.job)

        job = world.job
        assert (job.status, job.error_code) == ("failed", "SERVICE_UNAVAILABLE")
        assert get_breaker("kubernetes").state() == "open"
        assert len(requests_to(world.kube, "POST", deployments_path())) == 2  # threshold

        second = sandbox_job(organization)
        seen = len(world.kube.requests)
        run_task(second)

        assert (second.status, second.error_code) == ("failed", "SERVICE_UNAVAILABLE")
        assert second.error_details["reason"] == "circuit open"
        assert world.kube.requests[seen:] == []

        # The first job's cleanup could not reach the API either: its NetworkPolicy is left,
        # and that must stay on record for the reconciler.
        assert world.kube.get(NETWORK_POLICIES, world.name, SANDBOX) is not None
        job.refresh_from_db()
        assert f"network policy/{world.name}: ServiceUnavailableError" in job.error_details.get(
            "cleanup_failures", []
        ), job.error_details
    finally:
        forget_breakers()


def test_soft_time_limit_is_recorded_as_a_timeout_after_cleanup(world, task_settings):
    world.preseed()

    def soft_time_limit() -> None:
        raise SoftTimeLimitExceeded()

    with when_evidence_is_stored(soft_time_limit):
        run_task(world.job)

    details = assert_failed(world, "ANALYSIS_TIMEOUT")  # and the sandbox was cleaned up
    assert details["phase"] == "collect"


def test_a_redelivered_task_does_not_run_a_finished_job_again(world, task_settings):
    world.preseed()

    run_task(world.job)
    seen = len(world.kube.requests)
    run_task(world.job)  # the same message, delivered again

    assert_complete(world)
    assert len(requests_to(world.kube, "POST", deployments_path())) == 1
    assert VexDocument.objects.filter(job=world.job).count() == 1
    assert world.kube.requests[seen:] == []


def test_a_task_redelivered_after_its_worker_was_lost_resumes_and_adopts_its_deployment(
    world, task_settings
):
    # The lost attempt had claimed the job and created the Deployment, then its worker died.
    assert jobs.claim(world.job, world.job.celery_task_id)
    world.kube.put(DEPLOYMENTS, manifests.deployment(world.job, namespace=SANDBOX, resources={}))
    world.preseed()

    run_task(world.job)  # the same message, redelivered

    assert_complete(world)
    assert world.job.attempts == 2
    assert len(requests_to(world.kube, "POST", deployments_path())) == 1  # answered 409
    # one read to adopt it, one by cleanup to check it is this run's before deleting it
    assert len(requests_to(world.kube, "GET", f"{deployments_path()}/{world.name}")) == 2
    assert VexDocument.objects.filter(job=world.job).count() == 1


def test_an_earlier_runs_deployment_is_waited_for_not_adopted(world, task_settings):
    leftover = copy.deepcopy(world.job)
    leftover.celery_task_id = "an-earlier-attempt"
    world.kube.put(DEPLOYMENTS, manifests.deployment(leftover, namespace=SANDBOX, resources={}))
    world.preseed()

    with pytest.raises(Retry):
        run_task(world.job)

    world.job.refresh_from_db()
    assert (world.job.status, world.job.error_code) == ("queued", "KUBERNETES_ERROR")
    theirs = world.kube.get(DEPLOYMENTS, world.name, SANDBOX)
    assert theirs["metadata"]["labels"][manifests.ATTEMPT_LABEL] == "an-earlier-attempt"


def test_a_deployment_of_another_job_with_our_name_is_neither_adopted_nor_deleted(
    world, organization, task_settings
):
    twin = sandbox_job(organization, uuid.UUID(world.job.pk.hex[:8] + uuid.uuid4().hex[8:]))
    assert manifests.sandbox_name(twin.pk) == world.name
    world.kube.put(DEPLOYMENTS, manifests.deployment(twin, namespace=SANDBOX, resources={}))
    world.preseed()

    run_task(world.job)

    assert (world.job.status, world.job.error_code) == ("failed", "RESOURCE_CONFLICT")
    theirs = world.kube.get(DEPLOYMENTS, world.name, SANDBOX)
    assert theirs is not None, "cleanup deleted another job's Deployment"
    assert theirs["metadata"]["labels"][manifests.JOB_LABEL] == str(twin.pk)
