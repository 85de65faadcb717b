"""The sandbox pipeline: one claimed job from preflight to a published VEX, then cleanup.

Phases: preflight → deploy → wait_ready → observe (status ``analyzing``) →
collect → build. Between polls the pipeline writes a heartbeat, checks that
the job was not cancelled, and checks the job's time budget; whatever
happens, the sandbox and this instance's Kubescape objects are deleted.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from opentelemetry import context as otel_context
from opentelemetry import trace

from analysis import metrics
from analysis.budget import job_budget_seconds
from analysis.evidence import store_evidence
from analysis.exceptions import AnalysisTimeoutError, KubescapeError, SandboxError
from analysis.image_reference import digest_of
from analysis.models import AnalysisJob, VexDocument
from analysis.results import (
    FILTERED_SBOM,
    FULL,
    KUBESCAPE_VEX,
    RELEVANT,
    Evidence,
    build_for,
    record,
)
from analysis.sandbox.checks import check_kubernetes, check_kubescape
from analysis.sandbox.kubescape_objects import FAILED_PROFILE_STATUSES, KubescapeObjects
from analysis.sandbox.workload import ReadyPod, Workload
from analysis.status import RUNNING, JobStatus, transition
from analysis.vex.builder import COMPLETE, PARTIAL
from reliability.db import write_with_reconnect
from reliability.exceptions import ServiceUnavailableError
from reliability.health import HEALTHY

logger = logging.getLogger(__name__)
T = TypeVar("T")

# phase -> progress when it starts
PHASES = {"preflight": 5, "deploy": 10, "wait_ready": 20, "observe": 30, "collect": 85, "build": 95}
WORKLOAD_KIND = "deployment"


class Clock:
    """Real time; tests pass one whose ``sleep`` advances ``monotonic``."""

    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)


class SandboxDisabledError(ServiceUnavailableError):
    """No cluster is configured: retrying cannot help."""

    def __init__(self) -> None:
        super().__init__(
            "sandbox",
            "no Kubernetes cluster is configured (SANDBOX_ENABLED is off)",
            retry_after=None,
        )


class JobCancelled(Exception):
    """The job was cancelled while running: stop, clean up, record nothing."""


class Pipeline:
    def __init__(self, job: AnalysisJob, clock: Clock | None = None) -> None:
        self.job = job
        self.clock = clock or Clock()
        self.budget = job_budget_seconds(job.config["analysis_duration"])
        self.deadline = self.clock.monotonic() + self.budget
        self.phase = "preflight"
        self.phase_started: float | None = None  # None: no phase timed yet
        self.phase_span: tuple[trace.Span, object] | None = None  # the open span, its token
        self.workload = Workload(job, retry_sleep=self.clock.sleep)
        self.kubescape: KubescapeObjects | None = None
        self.deploying = False  # nothing to clean up before the first create
        # Writes are conditional on the job still running under this task: a task that was
        # superseded (requeued by recover_stale_jobs, cancelled and retried) changes nothing.
        self.ours = {"celery_task_id": job.celery_task_id}

    # -- driving -------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        finally:
            self._phase_ended()
            with _tracer().start_as_current_span("phase cleanup", attributes=_CLEANUP):
                self.cleanup()

    def _run(self) -> None:
        self.enter("preflight")
        self._preflight()
        self.enter("deploy")
        AnalysisJob.objects.filter(pk=self.job.pk).update(sandbox_name=self.workload.name)
        self.deploying = True
        self.workload.deploy()
        self.enter("wait_ready")
        try:
            pod = self.poll(self.workload.ready_pod)
        except SandboxError as error:
            # Logs may echo secrets from the environment: evidence (admin only), not the error.
            logs = error.details.pop("logs", None)
            if logs:
                store_evidence(
                    self.job,
                    "sandbox_logs",
                    logs,
                    f"last log lines of {error.details.get('pod', 'the pod')}",
                )
                error.details["log_lines"] = len(logs)
            raise
        self._observe(pod)

    def _preflight(self) -> None:
        if not settings.SANDBOX_ENABLED:
            raise SandboxDisabledError()
        kubernetes = check_kubernetes()
        if kubernetes.status != HEALTHY:
            raise ServiceUnavailableError(
                "kubernetes",
                kubernetes.reason or "unhealthy",
                retry_after=settings.HEALTH_KUBERNETES_CACHE_SECONDS,
            )
        kubescape = check_kubescape()
        if kubescape.status != HEALTHY:
            raise KubescapeError(
                f"Kubescape is not usable: {kubescape.reason}. Install the Kubescape operator "
                "with relevancy enabled (helm chart kubescape-operator).",
                {"reason": kubescape.reason},
            )
        self.workload.check_namespace()

    def _observe(self, pod: ReadyPod) -> None:
        self.kubescape = KubescapeObjects(
            pod.instance,
            WORKLOAD_KIND,
            self.workload.name,
            settings.KUBESCAPE_NAMESPACE,
            self.clock.sleep,
        )
        transition(
            self.job,
            JobStatus.ANALYZING,
            sources=frozenset({JobStatus.RUNNING}),
            where=self.ours,
            current_phase="observe",
            progress_percent=PHASES["observe"],
            heartbeat_at=timezone.now(),
        )
        self._phase_began("observe")
        profile = self.poll(self._completed_profile)
        completeness = COMPLETE if profile.completion == "complete" else PARTIAL
        relevant = self.poll(self._settled_relevant_manifest())
        full = self.poll(lambda: self.kubescape.full_manifest(pod.image_id))
        self.enter("collect")
        collected = Evidence(
            full, relevant, self.kubescape.kubescape_vex(), self.kubescape.filtered_sbom()
        )
        parsed = collected.parsed()
        for kind, data in collected.items():
            store_evidence(self.job, kind, data, _DESCRIPTIONS[kind])
        self.enter("build")
        result = build_for(self.job, parsed, completeness, (digest_of(pod.image_id),))
        write_with_reconnect(self._complete, result, completeness)
        logger.info(
            "Job %s complete",
            self.job.pk,
            extra={"job_id": str(self.job.pk), "statements": len(result.results)},
        )
        self._prebuild_cyclonedx()

    def _prebuild_cyclonedx(self) -> None:
        """Here, not in the first download: a large VEX takes seconds to convert.

        The job is complete whatever happens; a failure only leaves the work to that download.
        """
        vex = VexDocument.objects.filter(job=self.job).order_by("-created_at").first()
        if vex is None:
            return
        try:
            vex.as_cyclonedx()
        except Exception:
            logger.exception(
                "CycloneDX form of VEX %s not built",
                vex.pk,
                extra={"job_id": str(self.job.pk), "vex_id": str(vex.pk)},
            )

    def _complete(self, result, completeness: str) -> None:
        with transaction.atomic():  # no VEX document without a complete job, and vice versa
            # An earlier attempt's transient error does not describe a complete job.
            transition(
                self.job,
                JobStatus.COMPLETE,
                where=self.ours,
                error_code="",
                error_message="",
                error_details={},
                **record(self.job, result, completeness),
            )

    def _completed_profile(self):
        profile = self.kubescape.profile()
        if profile is None:
            return None
        if profile.status in FAILED_PROFILE_STATUSES:
            raise KubescapeError(
                f"Kubescape could not profile the container ({profile.status}).",
                {"profile_status": profile.status},
            )
        return profile if profile.status == "completed" else None

    def _settled_relevant_manifest(self) -> Callable[[], dict[str, Any] | None]:
        """Accept the manifest once rewritten after completion, or unchanged for a settle period.

        A manifest from an earlier partial scan may already exist when the profile
        completes; the final scan rewrites it (its resourceVersion changes).
        """
        first = self.kubescape.relevant_manifest()
        seen_version = _version(first)
        since = self.clock.monotonic()

        def probe() -> dict[str, Any] | None:
            manifest = self.kubescape.relevant_manifest()
            if manifest is None:
                return None
            if seen_version is None or _version(manifest) != seen_version:
                return manifest
            settled = self.clock.monotonic() - since >= settings.KUBESCAPE_SETTLE_SECONDS
            return manifest if settled else None

        return probe

    # -- polling, heartbeat, cancellation, budget -----------------------------------

    def enter(self, phase: str) -> None:
        self._phase_began(phase)
        self.checkpoint(progress=PHASES[phase])

    def _phase_began(self, phase: str) -> None:
        self._phase_ended()
        self.phase = phase
        self.phase_started = self.clock.monotonic()
        self.phase_span = _open_phase_span(phase)

    def _phase_ended(self) -> None:
        """The current phase's duration, on the pipeline's clock; once per phase."""
        if self.phase_started is not None:
            metrics.phase_finished(self.phase, self.clock.monotonic() - self.phase_started)
            self.phase_started = None
        if self.phase_span is not None:
            _close_phase_span(*self.phase_span)
            self.phase_span = None

    def poll(self, probe: Callable[[], T | None]) -> T:
        while True:
            self.checkpoint()
            result = probe()
            if result is not None:
                return result
            self.clock.sleep(self.interval())

    def interval(self) -> float:
        remaining = max(0.0, self.deadline - self.clock.monotonic())
        return max(1.0, min(settings.SANDBOX_POLL_MAX_SECONDS, remaining / 10))

    def checkpoint(self, progress: int | None = None) -> None:
        if self.clock.monotonic() >= self.deadline:
            raise AnalysisTimeoutError(self.job.pk, self.phase, self.budget)
        fields: dict[str, Any] = {"heartbeat_at": timezone.now(), "current_phase": self.phase}
        if progress is not None:
            fields["progress_percent"] = progress
        # Still ours: running under this task. Cancelled, or requeued by recover_stale_jobs
        # (which clears the task id), means stop and clean up.
        ours = AnalysisJob.objects.filter(
            pk=self.job.pk, status__in=RUNNING, celery_task_id=self.job.celery_task_id
        )
        alive = write_with_reconnect(ours.update, **fields)
        if not alive:
            raise JobCancelled(self.job.pk)

    # -- cleanup -----------------------------------------------------------------------

    def cleanup(self, *, assume_deployed: bool = False) -> list[str]:
        """Delete everything this job created; failures are recorded, not raised.

        ``assume_deployed``: an earlier, lost attempt may have created the sandbox.
        """
        if not (self.deploying or assume_deployed):
            return []
        failures: list[str] = []
        if self.kubescape is None:
            # Failed before observing: Kubescape may still have profiled the pod.
            try:
                instance = self.workload.any_instance()
            except Exception as error:
                instance = None
                failures.append(f"pods: {type(error).__name__}")
            if instance is not None:
                self.kubescape = KubescapeObjects(
                    instance,
                    WORKLOAD_KIND,
                    self.workload.name,
                    settings.KUBESCAPE_NAMESPACE,
                    self.clock.sleep,
                )
        failures += self.workload.delete()
        if self.kubescape is not None:
            for namespace, plural, name in self.kubescape.owned():
                try:
                    self.kubescape.delete(namespace, plural, name)
                except Exception as error:
                    failures.append(f"{plural}/{name}: {type(error).__name__}")
        if failures:
            logger.error(
                "Cleanup of job %s left %d object(s) for the reconciler",
                self.job.pk,
                len(failures),
                extra={"job_id": str(self.job.pk), "cleanup_failures": failures},
            )
            job = AnalysisJob.objects.get(pk=self.job.pk)
            AnalysisJob.objects.filter(pk=self.job.pk).update(
                error_details={**(job.error_details or {}), "cleanup_failures": failures}
            )
        return failures


_DESCRIPTIONS = {
    FULL: "Kubescape VulnerabilityManifest of the image (all packages)",
    RELEVANT: "Kubescape VulnerabilityManifest of the packages loaded at runtime",
    KUBESCAPE_VEX: "Kubescape's own OpenVEX document for the container",
    FILTERED_SBOM: "Kubescape's SBOM of the files used at runtime",
}


_CLEANUP = {"vexxy.phase": "cleanup"}


def _tracer() -> trace.Tracer:
    # Looked up each time: a no-op until a process configures tracing (vexxy/tracing.py).
    return trace.get_tracer(__name__)


def _open_phase_span(phase: str) -> tuple[trace.Span, object]:
    """A span for the phase, current until it ends: Kubernetes calls and queries nest in it."""
    span = _tracer().start_span(f"phase {phase}", attributes={"vexxy.phase": phase})
    return span, otel_context.attach(trace.set_span_in_context(span))


def _close_phase_span(span: trace.Span, token: object) -> None:
    error = sys.exc_info()[1]  # the exception leaving the pipeline, if one is
    if error is not None and span.is_recording():
        span.record_exception(error)
        span.set_status(trace.StatusCode.ERROR, type(error).__name__)
    otel_context.detach(token)
    span.end()


def _version(obj: dict[str, Any] | None) -> str | None:
    return None if obj is None else str((obj.get("metadata") or {}).get("resourceVersion"))
