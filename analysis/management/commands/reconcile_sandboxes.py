from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from analysis.sandbox.reconcile import reconcile_sandboxes
from reliability.commands import CorrelatedCommand
from reliability.exceptions import VexxyException


class Command(CorrelatedCommand):
    help = (
        "Delete sandbox Deployments, Services, NetworkPolicies and Kubescape objects whose job "
        "is finished, unknown, or past its time budget. Runs from Celery beat too."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--dry-run", action="store_true", help="report, delete nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.SANDBOX_ENABLED:
            raise CommandError("The sandbox is disabled (SANDBOX_ENABLED): nothing to reconcile.")
        try:
            report = reconcile_sandboxes(dry_run=options["dry_run"])
        except VexxyException as error:
            raise CommandError(f"{error.error_code}: {error.message}") from None
        verb = "would delete" if options["dry_run"] else "deleted"
        lines = [f"{verb} {len(report['deleted'])} sandbox object(s)"]
        lines += [f"  {what}" for what in report["deleted"]]
        lines += [f"  FAILED {what}" for what in report["failures"]]
        self.emit(options, report, "\n".join(lines))
        if report["failures"]:
            raise CommandError(
                f"{len(report['failures'])} object(s) could not be deleted", returncode=1
            )
