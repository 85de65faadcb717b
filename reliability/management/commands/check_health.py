from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from reliability.commands import CorrelatedCommand
from reliability.health import run_checks


class Command(CorrelatedCommand):
    help = "Run the same checks as GET /health; exit 1 when a required check is unhealthy."

    def handle(self, *args: Any, **options: Any) -> None:
        report = run_checks()
        checks = {name: result.as_dict() for name, result in report.checks.items()}
        lines = [f"{report.status.upper()}"]
        for name, check in checks.items():
            reason = f" - {check['reason']}" if check.get("reason") else ""
            required = "" if check["required"] else " (optional)"
            lines.append(f"  {name:<17} {check['status']}{required}{reason}")
        self.emit(options, {"status": report.status, "checks": checks}, "\n".join(lines))
        if report.http_status != 200:
            raise CommandError(f"unhealthy: {', '.join(report.unhealthy_required)}", returncode=1)
