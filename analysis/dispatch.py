"""Publishing jobs to the workers without ever losing one.

A job row is committed first; its task is published after the commit. A job
whose publish failed (broker down) stays ``queued`` with no ``dispatched_at``
and is published later by ``dispatch_pending_jobs``. Publishing claims the row
first (a conditional UPDATE), so two dispatchers never publish the same job.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from uuid import UUID

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from analysis.budget import task_time_limits
from analysis.models import AnalysisJob
from analysis.status import JobStatus
from reliability.correlation import CELERY_HEADER

logger = logging.getLogger(__name__)


def dispatch_on_commit(job_id: UUID) -> None:
    transaction.on_commit(lambda: publish(job_id))


PUBLISHED, NOT_PENDING, BROKER_DOWN = "published", "not_pending", "broker_down"
RUN_ANALYSIS = "analysis.run_analysis"  # the task's registered name


def publish(job_id: UUID) -> str:
    """Publish the job's task at most once; says whether it did, or why not."""
    task_id = str(uuid.uuid4())
    claimed = AnalysisJob.objects.filter(
        pk=job_id, status=JobStatus.QUEUED, dispatched_at__isnull=True
    ).update(dispatched_at=timezone.now(), celery_task_id=task_id)
    if not claimed:
        return NOT_PENDING
    job = AnalysisJob.objects.only("config", "priority", "request_id").get(pk=job_id)
    soft, hard = task_time_limits(job.config["analysis_duration"])
    try:
        # By name: the task's module imports the job rules, which publish through this one.
        # The app registers its tasks when Django is ready (analysis/apps.py).
        current_app.tasks[RUN_ANALYSIS].apply_async(
            args=[str(job_id)],
            task_id=task_id,
            soft_time_limit=soft,
            time_limit=hard,
            priority=job.priority,
            # The worker logs under the submission's ID, even when beat republishes the job.
            headers={CELERY_HEADER: job.request_id} if job.request_id else None,
        )
    except Exception as exc:
        # Unclaim so that dispatch_pending_jobs picks it up; the job itself is safe.
        AnalysisJob.objects.filter(pk=job_id, celery_task_id=task_id).make_pending()
        logger.warning(
            "Could not publish job %s; it stays queued for dispatch_pending_jobs",
            job_id,
            extra={"job_id": str(job_id), "error_type": type(exc).__name__},
        )
        return BROKER_DOWN
    logger.info("Published job %s", job_id, extra={"job_id": str(job_id), "task_id": task_id})
    return PUBLISHED


PENDING_GRACE_SECONDS = 10.0


def pending_jobs(grace_seconds: float = PENDING_GRACE_SECONDS) -> list[UUID]:
    """Queued jobs never published; the grace period leaves on_commit publishes alone."""
    return list(
        _pending(grace_seconds).order_by("-priority", "created_at").values_list("pk", flat=True)
    )


def _pending(grace_seconds: float) -> QuerySet[AnalysisJob]:
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    return AnalysisJob.objects.filter(
        status=JobStatus.QUEUED, dispatched_at__isnull=True, updated_at__lte=cutoff
    )


def lost_publishes(older_than_seconds: float) -> list[tuple[UUID, str]]:
    """Queued jobs published long ago but never claimed: their message was lost.

    (A broker that lost it, a worker that acked it and died before claiming, a web
    process that died between claiming the row and publishing.)
    """
    return list(_lost(older_than_seconds).values_list("pk", "celery_task_id"))


def _lost(older_than_seconds: float) -> QuerySet[AnalysisJob]:
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return AnalysisJob.objects.filter(status=JobStatus.QUEUED, dispatched_at__lt=cutoff)


def undispatched_jobs() -> QuerySet[AnalysisJob]:
    """What the next ``dispatch_pending_jobs`` would publish: pending, or published and lost.

    Both halves are ranges of the (status, dispatched_at) index.
    """
    return (
        _pending(PENDING_GRACE_SECONDS) | _lost(settings.DISPATCH_LOST_AFTER_SECONDS)
    ).order_by()


def release(job_id: UUID, task_id: str) -> bool:
    """Make a lost publish pending again under no task id.

    The old message, if it ever arrives, is then refused by the claim, and
    ``dispatch_pending_jobs`` publishes the job anew.
    """
    released = AnalysisJob.objects.filter(pk=job_id, celery_task_id=task_id).make_pending()
    if released:
        logger.warning(
            "Job %s was published but never started; publishing it again",
            job_id,
            extra={"job_id": str(job_id), "task_id": task_id},
        )
    return bool(released)


def revoke(task_id: str) -> None:
    """Best effort: the worker also checks the job's status before and during the run."""
    if not task_id:
        return
    try:
        current_app.control.revoke(task_id)
    except Exception as exc:
        logger.warning(
            "Could not revoke task %s",
            task_id,
            extra={"task_id": task_id, "error_type": type(exc).__name__},
        )
