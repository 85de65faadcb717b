"""The cluster-wide bound on sandboxes alive at once: ``MAX_CONCURRENT_SANDBOXES`` slots.

A slot is a database row, so every worker on every host sees the same ones. A run of a
job (its Celery task id) takes a free slot before it claims the job, with a conditional
UPDATE of that one row: two workers racing for it cannot both win, on PostgreSQL or
SQLite. The run gives it back once its sandbox is deleted, on every way out of the task;
a run whose worker died is found by the stale-job recovery, which deletes its sandbox and
then frees its slot (:func:`release_orphans` covers the runs nobody recovers: a job
cancelled while its worker was dying, a worker lost between taking a slot and claiming).

A job that finds every slot taken goes back to ``queued`` and unpublished, with the phase
:data:`WAITING_PHASE`: no message waits in a broker or in a worker's memory, where a lost
worker would take it along. Each run that frees a slot publishes the waiting job that comes
first (priority, then age); ``dispatch_pending_jobs`` publishes the others on its next beat,
so a job that lost a race for a freed slot waits at most one beat interval longer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from analysis.dispatch import NOT_PENDING
from analysis.models import AnalysisJob, SandboxSlot
from analysis.status import RUNNING, TERMINAL, JobStatus
from reliability.health import DISABLED, HEALTHY, CheckResult

logger = logging.getLogger(__name__)

WAITING_PHASE = "waiting for a sandbox slot"


def acquire(job_id: UUID, task_id: str) -> bool:
    """Take a free slot for this run; True also when the run already holds one (redelivery)."""
    if SandboxSlot.objects.filter(task_id=task_id).exists():
        return True
    limit = settings.MAX_CONCURRENT_SANDBOXES
    _create_slots(limit)
    free = SandboxSlot.objects.filter(number__lt=limit, task_id="").values_list("number", flat=True)
    for number in list(free):
        try:
            with transaction.atomic():
                taken = SandboxSlot.objects.filter(number=number, task_id="").update(
                    task_id=task_id, job_id=job_id, acquired_at=timezone.now()
                )
        except IntegrityError:  # the same run took another slot meanwhile (a duplicate message)
            return True
        if taken:
            logger.info(
                "Job %s took sandbox slot %d of %d",
                job_id,
                number,
                limit,
                extra={"job_id": str(job_id), "task_id": task_id, "slot": number},
            )
            return True
    return False


def _create_slots(limit: int) -> None:
    if SandboxSlot.objects.filter(number__lt=limit).count() < limit:
        SandboxSlot.objects.bulk_create(
            [SandboxSlot(number=n) for n in range(limit)], ignore_conflicts=True
        )


def release(task_id: str) -> int:
    """Free the slot this run holds, if any, and start the next waiting job; slots freed."""
    if not task_id:
        return 0
    freed = SandboxSlot.objects.filter(task_id=task_id).update(
        task_id="", job_id=None, acquired_at=None
    )
    if freed:
        _publish_next_waiting()
    return freed


def _publish_next_waiting() -> None:
    from analysis.dispatch import publish  # dispatch publishes the task, whose module uses this

    waiting = (
        AnalysisJob.objects.filter(
            status=JobStatus.QUEUED, dispatched_at__isnull=True, current_phase=WAITING_PHASE
        )
        .order_by("-priority", "created_at")
        .values_list("pk", flat=True)
    )
    for job_id in waiting[:3]:  # the first may have been published by another run just now
        if publish(job_id) != NOT_PENDING:
            return


def wait_for_slot(job_id: UUID, task_id: str) -> bool:
    """Back to queued and unpublished, saying why; False if the job is no longer this run's."""
    now = timezone.now()
    return bool(
        AnalysisJob.objects.filter(
            pk=job_id, status=JobStatus.QUEUED, celery_task_id=task_id
        ).update(current_phase=WAITING_PHASE, dispatched_at=None, celery_task_id="", updated_at=now)
    )


# -- what is in use ------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    limit: int
    in_use: int
    waiting: int  # queued jobs whose last try found no free slot

    def as_dict(self) -> dict[str, int]:
        return {"limit": self.limit, "in_use": self.in_use, "waiting": self.waiting}


def usage() -> Usage:
    return Usage(
        limit=settings.MAX_CONCURRENT_SANDBOXES,
        in_use=SandboxSlot.objects.exclude(task_id="").count(),
        waiting=AnalysisJob.objects.filter(
            status=JobStatus.QUEUED, current_phase=WAITING_PHASE
        ).count(),
    )


def check_sandbox_slots() -> CheckResult:
    """Informational for ``/health``: all slots taken is load, not a fault."""
    if not settings.SANDBOX_ENABLED:
        return CheckResult(DISABLED, required=False, reason="sandbox disabled (SANDBOX_ENABLED)")
    return CheckResult(HEALTHY, required=False, details=usage().as_dict())


# -- recovery --------------------------------------------------------------------------------


def release_orphans(stale_after: float, *, dry_run: bool = False) -> dict[str, list[str]]:
    """Free the slots of runs that no longer run and that no stale-job recovery will find.

    A slot held longer than ``stale_after`` whose run is not its job's running task: the
    job finished, was cancelled, was requeued under another task, or is gone. When the
    job was cancelled or failed under that very run long enough ago (its worker died before
    cleaning up), the run's sandbox is deleted first. Returns job ids by what was done.
    """
    from analysis.sandbox.pipeline import Pipeline

    cutoff = timezone.now() - timedelta(seconds=stale_after)
    report: dict[str, list[str]] = {"released": [], "cleaned_up": []}
    for slot in SandboxSlot.objects.exclude(task_id="").filter(acquired_at__lt=cutoff):
        job = AnalysisJob.objects.filter(pk=slot.job_id).first()
        if job is not None and job.celery_task_id == slot.task_id:
            if job.status in RUNNING:
                continue  # alive, or stale: the stale-job recovery handles it
            if job.status in TERMINAL and job.updated_at >= cutoff:
                continue  # just finished: its worker may be deleting the sandbox right now
            if job.status in TERMINAL and settings.SANDBOX_ENABLED:
                if not dry_run:
                    Pipeline(job).cleanup(assume_deployed=True)
                report["cleaned_up"].append(str(job.pk))
        if dry_run:
            report["released"].append(str(slot.job_id))
        elif release(slot.task_id):
            report["released"].append(str(slot.job_id))
            logger.warning(
                "Sandbox slot %d of a run that no longer runs freed",
                slot.number,
                extra={"job_id": str(slot.job_id), "task_id": slot.task_id, "slot": slot.number},
            )
    return report
