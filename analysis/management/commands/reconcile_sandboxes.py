from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from analysis.exceptions import KubernetesError
from analysis.sandbox.reconcile import reconcile_sandboxes
from reliability.commands import CorrelatedCommand


class Command(CorrelatedCommand):
    help = (
        "Delete sandbox Deployments, Services, NetworkPolicies and Kubescape objects whose job "
        "is finished, unknown, or past its time budget. Runs from Celery beat too. With the "
        "sandbox disabled there is nothing to reconcile: it says so and succeeds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--dry-run", action="store_true", help="report, delete nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run: bool = options["dry_run"]
        if not settings.SANDBOX_ENABLED:
            report = {"deleted": [], "failures": [], "dry_run": dry_run, "sandbox_enabled": False}
            text = "The sandbox is disabled (SANDBOX_ENABLED): nothing to reconcile."
            self.emit(options, report, text)
            return
        report = {**reconcile_sandboxes(dry_run=dry_run), "sandbox_enabled": True}
        verb = "would delete" if dry_run else "deleted"
        lines = [f"{verb} {len(report['deleted'])} sandbox object(s)"]
        lines += [f"  {what}" for what in report["deleted"]]
        lines += [f"  FAILED {what}" for what in report["failures"]]
        error = None
        if report["failures"]:
            error = KubernetesError(
                "delete", f"{len(report['failures'])} object(s) could not be deleted"
            )
        self.emit(options, report, "\n".join(lines), error=error)
