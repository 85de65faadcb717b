"""What can be done to a job: submit, cancel, retry, fail. Views and commands call these."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from analysis import metrics, quota
from analysis.dispatch import dispatch_on_commit, revoke
from analysis.exceptions import InvalidJobStateError
from analysis.models import AnalysisJob, Organization
from analysis.sandbox.availability import ensure_sandbox_available
from analysis.status import ACTIVE, REQUEUEABLE, RUNNING, JobStatus, transition
from reliability.correlation import get_request_id
from reliability.error_mapping import to_vexxy_exception

logger = logging.getLogger(__name__)


def submit(organization: Organization, data: dict[str, Any], submitted_by: str) -> AnalysisJob:
    """Create a queued job from validated ``data`` and publish it after commit."""
    ensure_sandbox_available()
    with transaction.atomic():
        quota.consume(organization)
        job = AnalysisJob.objects.create(
            organization=organization,
            image_ref=data["image_ref"],
            image_digest=data["image_digest"],
            sbom_id=data.get("sbom_id") or "",
            profile=data["profile"],
            config=data["config"],
            priority=data.get("priority", 5),
            request_id=get_request_id() or "",
            submitted_by=submitted_by,
        )
        dispatch_on_commit(job.pk)
        metrics.job_submitted(job)
    logger.info(
        "Job %s submitted for %s",
        job.pk,
        job.image_ref,
        extra={"job_id": str(job.pk), "organization": organization.slug, "profile": job.profile},
    )
    return job


def cancel(job: AnalysisJob, actor: str) -> AnalysisJob:
    now = timezone.now()
    transition(job, JobStatus.CANCELLED, cancelled_at=now, cancelled_by=actor, completed_at=now)
    transaction.on_commit(lambda: revoke(job.celery_task_id))
    logger.info(
        "Job %s cancelled by %s", job.pk, actor, extra={"job_id": str(job.pk), "actor": actor}
    )
    return job


def retry(job: AnalysisJob, actor: str) -> AnalysisJob:
    """Requeue a failed or cancelled job; it does not count against the quota again."""
    if job.status not in REQUEUEABLE:  # a wrong state is the answer, even without a sandbox
        raise InvalidJobStateError(job.pk, job.status, sorted(REQUEUEABLE))
    ensure_sandbox_available()
    with transaction.atomic():
        transition(
            job,
            JobStatus.QUEUED,
            sources=REQUEUEABLE,
            progress_percent=0,
            current_phase="",
            error_code="",
            error_message="",
            error_details={},
            started_at=None,
            completed_at=None,
            cancelled_at=None,
            cancelled_by="",
            dispatched_at=None,
            celery_task_id="",
            heartbeat_at=None,
            attempts=0,
            request_id=get_request_id() or job.request_id,
        )
        dispatch_on_commit(job.pk)
    logger.info(
        "Job %s requeued by %s", job.pk, actor, extra={"job_id": str(job.pk), "actor": actor}
    )
    return job


def fail(
    job: AnalysisJob, error: BaseException, phase: str = "", where: dict | None = None
) -> AnalysisJob:
    """Record ``error`` on an active job; the message is the client-safe one."""
    vexxy_error = to_vexxy_exception(error)
    transition(
        job,
        JobStatus.FAILED,
        where=where,
        completed_at=timezone.now(),
        error_code=vexxy_error.error_code,
        error_message=vexxy_error.message,
        error_details=_with_cleanup_failures(job, vexxy_error.details),
        current_phase=phase or job.current_phase,
    )
    return job


def requeue_for_retry(
    job: AnalysisJob, error: BaseException, where: dict | None = None
) -> AnalysisJob:
    """running/analyzing → queued after a transient failure; the task retries itself."""
    vexxy_error = to_vexxy_exception(error)
    return transition(
        job,
        JobStatus.QUEUED,
        sources=RUNNING,
        where=where,
        current_phase="retry scheduled",
        progress_percent=0,
        error_code=vexxy_error.error_code,
        error_message=vexxy_error.message,
        error_details=_with_cleanup_failures(job, vexxy_error.details),
    )


def _with_cleanup_failures(job: AnalysisJob, details: dict[str, Any]) -> dict[str, Any]:
    """``details``, keeping what the pipeline's cleanup could not delete (for the reconciler)."""
    recorded = AnalysisJob.objects.filter(pk=job.pk).values_list("error_details", flat=True)
    leftovers = (recorded.first() or {}).get("cleanup_failures")
    return {**details, "cleanup_failures": leftovers} if leftovers else dict(details)


def requeue_after_worker_loss(job: AnalysisJob) -> AnalysisJob:
    """A running job whose worker was lost → queued, unpublished; only if its heartbeat is
    still the one seen, so that a worker that was merely slow keeps its job."""
    return transition(
        job,
        JobStatus.QUEUED,
        sources=RUNNING,
        where={"heartbeat_at": job.heartbeat_at},
        current_phase="requeued after worker loss",
        progress_percent=0,
        dispatched_at=None,
        celery_task_id="",
    )


def claim(job: AnalysisJob, task_id: str) -> bool:
    """→ running, for the task published for this job; False if it is not ours to run.

    A job already running under the same task id is resumed: its message was
    redelivered because the worker running it was lost.
    """
    now = timezone.now()
    try:
        transition(
            job,
            JobStatus.RUNNING,
            sources=ACTIVE,
            where={"celery_task_id": task_id},
            started_at=now,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            current_phase="preflight",
            progress_percent=0,
        )
    except InvalidJobStateError:
        job.refresh_from_db()
        return False
    return True
