from __future__ import annotations

from argparse import ArgumentTypeError
from datetime import timedelta
from typing import Any

from django.core.management.base import CommandParser
from django.db.models import Q, QuerySet
from django.utils import timezone

from analysis.models import AnalysisEvidence, AnalysisJob, VexDocument
from analysis.status import TERMINAL, JobStatus
from reliability.commands import CorrelatedCommand, at_least

BATCH_SIZE = 500
LISTED_IDS = 100
DELETABLE = sorted(status.value for status in TERMINAL)


def deletable_status(value: str) -> str:
    """``--status``: a terminal status; active jobs are never deleted."""
    if value in DELETABLE:
        return value
    if value in JobStatus.values:
        raise ArgumentTypeError(
            f"{value} jobs are active and never deleted; choose from {', '.join(DELETABLE)}"
        )
    raise ArgumentTypeError(f"unknown status {value!r}; choose from {', '.join(DELETABLE)}")


class Command(CorrelatedCommand):
    help = (
        "Delete finished jobs (complete, failed, cancelled) that finished more than "
        "--older-than days ago, with their evidence and VEX documents. Active jobs are never "
        "touched; usage counted against quotas is kept. Deletes in batches of "
        f"{BATCH_SIZE} jobs, one transaction each."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--older-than",
            type=at_least(int, 1),
            required=True,
            metavar="DAYS",
            help="finished (or, never finished, created) more than DAYS ago; at least 1",
        )
        parser.add_argument(
            "--status",
            type=deletable_status,
            nargs="+",
            action="extend",
            default=[],
            metavar="STATUS",
            help=f"only jobs in these statuses ({', '.join(DELETABLE)}; several values, or the "
            "option repeated; default: all three)",
        )
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        statuses = sorted(set(options["status"])) or DELETABLE
        cutoff = timezone.now() - timedelta(days=options["older_than"])
        finished_before = Q(completed_at__lt=cutoff) | Q(
            completed_at__isnull=True, created_at__lt=cutoff
        )
        candidates = AnalysisJob.objects.filter(finished_before, status__in=statuses).order_by(
            "created_at", "pk"
        )
        dry_run: bool = options["dry_run"]
        counts, job_ids = self._count(candidates) if dry_run else self._delete(candidates)
        summary = {**counts, "job_ids": job_ids, "dry_run": dry_run}
        verb = "would be" if dry_run else "were"
        text = (
            f"{counts['jobs']} job(s) {verb} deleted, with {counts['evidence']} evidence "
            f"row(s) and {counts['vex_documents']} VEX document(s)"
        )
        self.emit(options, summary, text)

    @staticmethod
    def _count(candidates: QuerySet[AnalysisJob]) -> tuple[dict[str, int], list[str]]:
        counts = {
            "jobs": candidates.count(),
            "evidence": AnalysisEvidence.objects.filter(job__in=candidates).count(),
            "vex_documents": VexDocument.objects.filter(job__in=candidates).count(),
        }
        return counts, [str(pk) for pk in candidates.values_list("pk", flat=True)[:LISTED_IDS]]

    @staticmethod
    def _delete(candidates: QuerySet[AnalysisJob]) -> tuple[dict[str, int], list[str]]:
        """Batch after batch, each its own transaction, until no candidate is left.

        Each batch is re-selected by the same conditions, so a job retried in the
        meantime (active again) is left alone.
        """
        labels = {
            AnalysisJob._meta.label: "jobs",
            AnalysisEvidence._meta.label: "evidence",
            VexDocument._meta.label: "vex_documents",
        }
        counts = dict.fromkeys(labels.values(), 0)
        job_ids: list[str] = []
        while batch := list(candidates.values_list("pk", flat=True)[:BATCH_SIZE]):
            _, deleted = candidates.filter(pk__in=batch).delete()
            for label, name in labels.items():
                counts[name] += deleted.get(label, 0)
            job_ids += [str(pk) for pk in batch[: LISTED_IDS - len(job_ids)]]
        return counts, job_ids
