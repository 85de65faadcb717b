"""The results table: rows most severe first, then in the VEX's order, a page or all at once.

Rows are read a severity at a time, in ``position`` order, through the index on
``(job, severity, position)``; the counts say which severities a page spans and where in the
first one it starts. Nothing sorts or counts the job's rows, however many there are.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from django.db.models import QuerySet
from django.utils.html import format_html
from django.utils.safestring import SafeString

from analysis.models import AnalysisJob, ReachabilityResult
from analysis.report.counts import SEVERITY_ORDER, STATUS_ORDER, Counts

PAGE_SIZE = 100
STREAM_CHUNK = 2000

COLUMNS = ("Vulnerability", "Package", "Severity", "Status", "Confidence", "Why", "Fix")

FIX_STATES = {
    "not-fixed": "No fix yet",
    "wont-fix": "Won't be fixed",
    "unknown": "Not known",
}


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    severity: str | None = None

    @classmethod
    def known(cls, params: Mapping[str, str]) -> Filters:
        """The filters of ``params`` that name a known status or severity; others are ignored."""
        status, severity = params.get("status"), params.get("severity")
        return cls(
            status if status in STATUS_ORDER else None,
            severity if severity in SEVERITY_ORDER else None,
        )

    def results_of(self, job: AnalysisJob, severity: str) -> QuerySet[ReachabilityResult]:
        rows = job.results.filter(severity=severity)
        if self.status is not None:
            rows = rows.filter(status=self.status)
        return rows.order_by("position")

    def severities(self, counts: Counts) -> list[tuple[str, int]]:
        """(severity, rows this filter keeps of it), in order, without the empty ones."""
        kept = [
            (severity, counts.count(severity, self.status))
            for severity in counts.severities
            if self.severity in (None, severity)
        ]
        return [(severity, n) for severity, n in kept if n]


@dataclass
class Page:
    number: int
    size: int
    count: int  # rows the filters keep, on every page
    rows: list[SafeString] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.count / self.size))

    @property
    def first_row(self) -> int:
        return (self.number - 1) * self.size + 1 if self.count else 0

    @property
    def last_row(self) -> int:
        return self.first_row + len(self.rows) - 1 if self.rows else 0


def result_page(
    job: AnalysisJob, counts: Counts, filters: Filters, number: int, size: int = PAGE_SIZE
) -> Page:
    """Page ``number`` (from 1; past the last, the last) of the rows ``filters`` keep."""
    spans = filters.severities(counts)
    page = Page(number=1, size=size, count=sum(n for _, n in spans))
    page.number = min(max(number, 1), page.pages)
    skip, wanted = (page.number - 1) * size, size
    for severity, n in spans:
        if skip >= n:
            skip -= n
            continue
        take = min(n - skip, wanted)
        data = filters.results_of(job, severity).values_list("data", flat=True)
        page.rows.extend(row_html(result) for result in data[skip : skip + take])
        wanted -= take
        skip = 0
        if not wanted:
            break
    return page


def all_rows(job: AnalysisJob, counts: Counts, filters: Filters) -> Iterator[SafeString]:
    """Every row ``filters`` keep, read ``STREAM_CHUNK`` at a time."""
    for severity, _ in filters.severities(counts):
        data = filters.results_of(job, severity).values_list("data", flat=True)
        for result in data.iterator(chunk_size=STREAM_CHUNK):
            yield row_html(result)


def advisory_url(vulnerability_id: str) -> str:
    quoted = quote(vulnerability_id, safe="")
    if vulnerability_id.startswith("CVE-"):
        return f"https://nvd.nist.gov/vuln/detail/{quoted}"
    if vulnerability_id.startswith("GHSA-"):
        return f"https://github.com/advisories/{quoted}"
    return f"https://osv.dev/vulnerability/{quoted}"


def row_html(result: dict[str, Any]) -> SafeString:
    """One ``<tr>``; ``result`` is a row's ``data`` (the result as the API shows it)."""
    vulnerability = str(result.get("cve_id") or "")
    severity = str(result.get("severity") or "Unknown")
    status = str(result.get("status") or "")
    confidence = result.get("confidence_score")
    return format_html(
        '<tr data-severity="{severity}" data-status="{status}">'
        '<td class="vuln"><a href="{url}" rel="noopener noreferrer">{vulnerability}</a>'
        "{aliases}</td>"
        '<td class="package">{package}{version}</td>'
        '<td><span class="severity severity-{severity_class}">{severity}</span></td>'
        '<td><span class="status status-{status_class}" title="{justification}">{status_label}'
        "</span></td>"
        '<td class="number">{confidence}</td>'
        '<td class="why">{why}</td>'
        '<td class="fix">{fix}</td></tr>',
        severity=severity,
        status=status,
        url=advisory_url(vulnerability),
        vulnerability=vulnerability,
        aliases=_aliases(result.get("aliases")),
        package=result.get("package_name") or "",
        version=_version(result.get("package_version")),
        severity_class=severity.lower() if severity in SEVERITY_ORDER else "unknown",
        status_class=status if status in STATUS_ORDER else "other",
        justification=(result.get("justification") or "").replace("_", " "),
        status_label=status.replace("_", " "),
        confidence=f"{confidence:.2f}" if isinstance(confidence, int | float) else "",
        why=result.get("reason") or "",
        fix=fix_text(result),
    )


def fix_text(result: Mapping[str, Any]) -> str:
    versions = result.get("fix_versions") or []
    if versions:
        return "Fixed in " + ", ".join(str(version) for version in versions)
    state = str(result.get("fix_state") or "unknown")
    return FIX_STATES.get(state, state.replace("-", " ").capitalize())


def _aliases(aliases: Any) -> SafeString | str:
    if not aliases:
        return ""
    return format_html('<span class="aliases">{}</span>', ", ".join(str(a) for a in aliases))


def _version(version: Any) -> SafeString | str:
    return format_html(' <span class="version">{}</span>', version) if version else ""
