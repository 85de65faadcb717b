from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.core.management.base import CommandParser
from django.db import transaction

from analysis import jobs
from analysis.exceptions import JobNotFoundError
from analysis.models import AnalysisJob
from reliability.commands import CorrelatedCommand


class JobActionCommand(CorrelatedCommand):
    """``<command> JOB_ID [--dry-run] [--json]``: one of :mod:`analysis.jobs`' actions on one job.

    The rules are the API's: an unknown job, a job in the wrong state, or no sandbox
    for a retry, is refused with the error code and message a client would see.
    """

    action: Callable[[AnalysisJob, str], AnalysisJob]
    done: str  # "requeued", "cancelled"

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("job_id", help="the job's UUID")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="apply every rule, then roll back: nothing changes",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        job = self._job(options["job_id"])
        with transaction.atomic():
            job = self.action(job, f"command:{self.request_id}")
            if options["dry_run"]:  # rolled back, with the publish or revoke it queued
                transaction.set_rollback(True)
        verb = f"would be {self.done}" if options["dry_run"] else self.done
        self.emit(
            options,
            {"job_id": str(job.pk), "status": job.status, "dry_run": options["dry_run"]},
            f"Job {job.pk} {verb}",
        )

    @staticmethod
    def _job(job_id: str) -> AnalysisJob:
        try:
            job = AnalysisJob.objects.filter(pk=uuid.UUID(job_id)).first()
        except ValueError:
            job = None
        if job is None:
            raise JobNotFoundError(job_id, f"No job {job_id}.")
        return job


class Command(JobActionCommand):
    help = (
        "Requeue a failed or cancelled job (as the API's retry does: it is not counted "
        "against the quota again, and is refused when the sandbox is unavailable)."
    )
    action = staticmethod(jobs.retry)
    done = "requeued"
