from __future__ import annotations

from typing import Any

from reliability.commands import CorrelatedCommand
from reliability.exceptions import ServiceUnavailableError
from reliability.health import HealthReport, run_checks
from reliability.settings import reliability_settings


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
        summary = {"status": report.status, "checks": checks}
        self.emit(options, summary, "\n".join(lines), error=_unhealthy(report))


def _unhealthy(report: HealthReport) -> ServiceUnavailableError | None:
    if not report.unhealthy_required:
        return None
    reason = f"unhealthy: {', '.join(report.unhealthy_required)}"
    return ServiceUnavailableError(reliability_settings.SERVICE_NAME, reason, reason)
