"""Job statuses and the only rules for moving between them.

Every status change in the service goes through :func:`transition`, which
updates the row only if it still is in an allowed source status. Two actors
racing (a cancel and a worker, two redelivered tasks) cannot both win.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models
from django.utils import timezone

from analysis import metrics
from analysis.exceptions import InvalidJobStateError
from reliability.db import write_with_reconnect

if TYPE_CHECKING:
    from analysis.models import AnalysisJob


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    ANALYZING = "analyzing", "Analyzing"
    COMPLETE = "complete", "Complete"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.ANALYZING})
RUNNING = frozenset({JobStatus.RUNNING, JobStatus.ANALYZING})  # a worker has it
TERMINAL = frozenset({JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.CANCELLED})

# target -> the statuses it may be entered from
ALLOWED_SOURCES: dict[str, frozenset[str]] = {
    # retry of a finished job, or a requeue of one whose worker was lost
    JobStatus.QUEUED: frozenset(
        {JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.RUNNING, JobStatus.ANALYZING}
    ),
    # from running/analyzing: the same task, redelivered after its worker was lost, resumes
    JobStatus.RUNNING: ACTIVE,
    JobStatus.ANALYZING: frozenset({JobStatus.RUNNING}),
    JobStatus.COMPLETE: frozenset({JobStatus.ANALYZING}),
    JobStatus.FAILED: ACTIVE,
    JobStatus.CANCELLED: ACTIVE,
}

REQUEUEABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})
FINISHED = frozenset({JobStatus.COMPLETE, JobStatus.FAILED})  # counted by the job metrics


def transition(
    job: AnalysisJob,
    target: str,
    *,
    sources: frozenset[str] | None = None,
    where: dict[str, Any] | None = None,
    **fields: Any,
) -> AnalysisJob:
    """Move ``job`` to ``target`` and write ``fields`` in the same UPDATE.

    ``sources`` narrows the allowed source statuses (a retry accepts only
    failed/cancelled, not the worker-lost requeue); ``where`` adds conditions
    (the claiming task's id). Raises ``InvalidJobStateError`` when the row does
    not match.
    """
    allowed = ALLOWED_SOURCES[target] if sources is None else sources & ALLOWED_SOURCES[target]
    values = {"status": target, "updated_at": timezone.now(), **fields}
    model = type(job)
    rows = model.objects.filter(pk=job.pk, status__in=allowed, **(where or {}))
    updated = write_with_reconnect(rows.update, **values)
    if not updated:
        current = model.objects.filter(pk=job.pk).values_list("status", flat=True).first()
        raise InvalidJobStateError(job.pk, current or "deleted", sorted(allowed))
    computed = [name for name, value in values.items() if hasattr(value, "resolve_expression")]
    for name, value in values.items():
        if name not in computed:
            setattr(job, name, value)
    if computed:
        job.refresh_from_db(fields=computed)
    if target in FINISHED:
        metrics.job_finished(job)  # every sandbox job ends here (imports are created complete)
    return job
