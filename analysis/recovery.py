"""Recovery of jobs whose worker was lost, shared by the command and the beat task."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from analysis import jobs
from analysis.dispatch import publish
from analysis.exceptions import InvalidJobStateError, WorkerLostError
from analysis.models import AnalysisJob
from analysis.sandbox import slots
from analysis.sandbox.pipeline import Pipeline
from analysis.status import RUNNING

logger = logging.getLogger(__name__)


def stale_jobs(stale_after: float) -> list[AnalysisJob]:
    """Running jobs whose heartbeat is older than ``stale_after`` seconds."""
    cutoff = timezone.now() - timedelta(seconds=stale_after)
    return list(
        AnalysisJob.objects.filter(status__in=RUNNING)
        .filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, updated_at__lt=cutoff))
        .order_by("heartbeat_at")
    )


def recover_stale_jobs(stale_after: float, *, dry_run: bool = False) -> dict[str, Any]:
    """Requeue (attempts left) or fail as WORKER_LOST each stale job, remove its sandbox and
    free its sandbox slot; then free the slots of runs that ended without freeing theirs.

    The status change is conditional on the heartbeat seen, so a worker that was
    only slow keeps its job; a requeued job's old task finds it is no longer its
    own at its next poll and stops.
    """
    report: dict[str, Any] = {
        "requeued": [],
        "failed": [],
        "skipped": [],
        "cleanup_failures": {},
        "dry_run": dry_run,
    }
    for job in stale_jobs(stale_after):
        requeue = job.attempts < settings.ANALYSIS_MAX_ATTEMPTS
        outcome = "requeued" if requeue else "failed"
        if dry_run:
            report[outcome].append(str(job.pk))
            continue
        # Built before the requeue clears the task id: it cleans up that run's objects.
        lost_run, lost_task_id = Pipeline(job), job.celery_task_id
        try:
            if requeue:
                jobs.requeue_after_worker_loss(job)
            else:
                jobs.fail(
                    job, WorkerLostError(job.attempts), where={"heartbeat_at": job.heartbeat_at}
                )
        except InvalidJobStateError:
            report["skipped"].append(str(job.pk))  # it moved on meanwhile: not stale
            continue
        failures = lost_run.cleanup(assume_deployed=True) if settings.SANDBOX_ENABLED else []
        if failures:
            report["cleanup_failures"][str(job.pk)] = failures
        slots.release(lost_task_id)
        if requeue:
            publish(job.pk)
        report[outcome].append(str(job.pk))
        logger.warning(
            "Stale job %s %s",
            job.pk,
            outcome,
            extra={"job_id": str(job.pk), "attempts": job.attempts},
        )
    report["slots"] = slots.release_orphans(stale_after, dry_run=dry_run)
    return report
