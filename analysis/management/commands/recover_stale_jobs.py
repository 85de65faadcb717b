from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from analysis.exceptions import KubernetesError
from analysis.recovery import recover_stale_jobs
from reliability.commands import CorrelatedCommand, at_least


class Command(CorrelatedCommand):
    help = (
        "Jobs running or analyzing whose heartbeat is older than --stale-after seconds lost "
        "their worker: requeue them (attempts left) or fail them as WORKER_LOST, and remove "
        "their sandbox. Runs from Celery beat too."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--stale-after",
            type=at_least(float, 0, inclusive=False),
            default=settings.STALE_JOB_SECONDS,
            help=f"seconds (default {settings.STALE_JOB_SECONDS:g})",
        )
        parser.add_argument("--dry-run", action="store_true", help="report, change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        report = recover_stale_jobs(options["stale_after"], dry_run=options["dry_run"])
        verb = "would be" if options["dry_run"] else "were"
        lines = [
            f"{len(report['requeued'])} stale job(s) {verb} requeued, "
            f"{len(report['failed'])} {verb} failed as WORKER_LOST"
        ]
        lines += [f"  requeued {job_id}" for job_id in report["requeued"]]
        lines += [f"  failed   {job_id}" for job_id in report["failed"]]
        lines += [
            f"  sandbox slot {verb} freed: {job_id}" for job_id in report["slots"]["released"]
        ]
        lines += [
            f"  left for the reconciler: {job_id}: {', '.join(items)}"
            for job_id, items in report["cleanup_failures"].items()
        ]
        error = None
        if report["cleanup_failures"]:
            error = KubernetesError("delete", "some sandbox objects could not be deleted")
        self.emit(options, report, "\n".join(lines), error=error)
