"""How many results a job has of each severity and status: the chart's bars and the table's pages.

Read from the job's summary (written with its results), so that neither needs to count or sort
the rows; a summary without ``by_severity`` is counted in the database instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.db.models import Count

from analysis.kubescape.readers import SEVERITIES
from analysis.models import AnalysisJob
from analysis.vex.builder import AFFECTED, NOT_AFFECTED, UNDER_INVESTIGATION

# Most severe first: the order of the chart's bars and of the table's rows.
SEVERITY_ORDER: tuple[str, ...] = SEVERITIES
SEVERITY_RANK = {severity: rank for rank, severity in enumerate(SEVERITY_ORDER)}
# What needs attention first.
STATUS_ORDER: tuple[str, ...] = (AFFECTED, UNDER_INVESTIGATION, "fixed", NOT_AFFECTED)


@dataclass(frozen=True)
class Counts:
    """``cells[severity][status]``: results of that severity and status."""

    cells: Mapping[str, Mapping[str, int]]

    @classmethod
    def of(cls, job: AnalysisJob) -> Counts:
        by_severity = (job.summary or {}).get("by_severity")
        if isinstance(by_severity, dict):
            return cls.from_summary(by_severity)
        return cls.counted(job)

    @classmethod
    def from_summary(cls, by_severity: Mapping[str, Mapping[str, int]]) -> Counts:
        return cls(
            {
                severity: {status: int(n) for status, n in statuses.items() if n}
                for severity, statuses in by_severity.items()
                if isinstance(statuses, dict)
            }
        )

    @classmethod
    def counted(cls, job: AnalysisJob) -> Counts:
        """One GROUP BY over the job's rows: for jobs whose summary does not say."""
        cells: dict[str, dict[str, int]] = {}
        rows = (
            job.results.order_by()
            .values_list("severity", "status")
            .annotate(n=Count("pk"))
            .values_list("severity", "status", "n")
        )
        for severity, status, n in rows:
            cells.setdefault(severity, {})[status] = n
        return cls(cells)

    @property
    def severities(self) -> tuple[str, ...]:
        """Every known severity, in order, then any other the results name."""
        others = sorted(set(self.cells) - set(SEVERITY_ORDER))
        return (*SEVERITY_ORDER, *others)

    @property
    def statuses(self) -> tuple[str, ...]:
        """The VEX statuses, in order, then any other the results name."""
        named = {status for statuses in self.cells.values() for status in statuses}
        return (*STATUS_ORDER, *sorted(named - set(STATUS_ORDER)))

    def count(self, severity: str | None = None, status: str | None = None) -> int:
        return sum(
            n
            for cell_severity, statuses in self.cells.items()
            if severity in (None, cell_severity)
            for cell_status, n in statuses.items()
            if status in (None, cell_status)
        )

    @property
    def total(self) -> int:
        return self.count()
