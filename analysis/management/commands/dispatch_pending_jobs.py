from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from analysis.dispatch import (
    BROKER_DOWN,
    NOT_PENDING,
    PUBLISHED,
    lost_publishes,
    pending_jobs,
    publish,
    release,
)
from reliability.commands import CorrelatedCommand, at_least
from reliability.exceptions import ServiceUnavailableError


class Command(CorrelatedCommand):
    help = (
        "Publish queued jobs that were never published (the broker was down at submit). "
        "Safe to run at any time: a job is published at most once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--dry-run", action="store_true", help="list, publish nothing")
        parser.add_argument(
            "--lost-after",
            type=at_least(float, 0, inclusive=False),
            default=settings.DISPATCH_LOST_AFTER_SECONDS,
            help="publish again jobs published this long ago (seconds) and never started "
            f"(default {settings.DISPATCH_LOST_AFTER_SECONDS:g})",
        )
        parser.add_argument(
            "--grace-seconds",
            type=at_least(float, 0),
            default=10.0,
            help="leave jobs updated more recently than this (default 10)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        lost = lost_publishes(options["lost_after"])
        if not options["dry_run"]:
            lost = [(job_id, task_id) for job_id, task_id in lost if release(job_id, task_id)]
        pending = pending_jobs(options["grace_seconds"])
        if options["dry_run"]:
            pending += [job_id for job_id, _ in lost if job_id not in pending]
        outcomes: dict[str, list] = {PUBLISHED: [], NOT_PENDING: [], BROKER_DOWN: []}
        if not options["dry_run"]:
            for job_id in pending:
                outcomes[publish(job_id)].append(job_id)
        published, failed = outcomes[PUBLISHED], outcomes[BROKER_DOWN]
        summary = {
            "lost": [str(j) for j, _ in lost],
            "pending": [str(j) for j in pending],
            "published": [str(j) for j in published],
            "failed": [str(j) for j in failed],
            "dry_run": options["dry_run"],
        }
        verb = "would publish" if options["dry_run"] else "published"
        count = len(pending) if options["dry_run"] else len(published)
        lines = [f"{len(pending)} pending job(s); {verb} {count}"]
        lines += [f"  {job_id}" for job_id in (pending if options["dry_run"] else published)]
        error = None
        if failed:
            lines.append(f"{len(failed)} could not be published (broker unreachable?)")
            error = ServiceUnavailableError(
                "broker", "publish failed", f"{len(failed)} job(s) could not be published"
            )
        self.emit(options, summary, "\n".join(lines), error=error)
