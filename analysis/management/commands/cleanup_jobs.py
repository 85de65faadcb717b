from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db.models import Q, QuerySet
from django.utils import timezone

from analysis.models import AnalysisEvidence, AnalysisJob, VexDocument
from analysis.status import TERMINAL, JobStatus
from reliability.commands import CorrelatedCommand

BATCH_SIZE = 500
LISTED_IDS = 100


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
            type=int,
            required=True,
            metavar="DAYS",
            help="finished (or, never finished, created) more than DAYS ago",
        )
        parser.add_argument(
            "--status",
            action="append",
            default=[],
            help="only jobs in this terminal status (repeatable; "
            "default: complete, failed and cancelled)",
        )
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        days: int = options["older_than"]
        if days < 1:
            raise CommandError("--older-than must be at least 1 (days).")
        statuses = self._statuses(options["status"])
        cutoff = timezone.now() - timedelta(days=days)
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
    def _statuses(given: list[str]) -> list[str]:
        known = {status.value for status in JobStatus}
        terminal = sorted(status.value for status in TERMINAL)
        for status in given:
            if status not in known:
                raise CommandError(f"Unknown status {status!r}; one of {', '.join(terminal)}.")
            if status not in TERMINAL:
                raise CommandError(
                    f"Jobs that are {status} are active and are never deleted; "
                    f"--status takes {', '.join(terminal)}."
                )
        return sorted(set(given)) if given else terminal

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
