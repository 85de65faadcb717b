"""The report as a page: the section of the admin's job page, and the standalone HTML file.

Both render the same partials (``templates/analysis/report/``): the facts, the chart and the
table. The admin shows a page of rows with filter and page links; the standalone file holds
every row the filters keep, streamed (see :func:`standalone_report`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.http import StreamingHttpResponse
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString

from analysis.models import AnalysisJob
from analysis.report.chart import label, severity_status_chart
from analysis.report.counts import Counts
from analysis.report.table import COLUMNS, Filters, Page, all_rows, result_page

ROWS_MARK = SafeString("<!-- vexxy-report-rows -->")
# The page loads nothing: its styles are inline and it has no script (also a <meta> in the file).
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
STREAM_BATCH = 500  # rows per chunk of the streamed page

SUMMARY_FACTS = (
    ("total_statements", "Results"),
    ("vulnerabilities", "Vulnerabilities"),
    ("components_seen", "Components with findings"),
    ("loaded_components", "Of those, loaded at runtime"),
    ("evidence_completeness", "Runtime profile"),
    ("malformed_entries", "Unreadable scanner entries"),
)


@dataclass(frozen=True)
class Link:
    text: str
    href: str | None  # None: the current choice, or one with nothing to show
    count: int | None = None
    current: bool = False


def overview(job: AnalysisJob, counts: Counts) -> dict[str, Any]:
    """What both pages show above the table."""
    summary = job.summary or {}
    facts = [(name, summary[key]) for key, name in SUMMARY_FACTS if key in summary]
    if "total_statements" not in summary:
        facts.insert(0, ("Results", counts.total))
    return {"job": job, "facts": facts, "chart": severity_status_chart(counts), "columns": COLUMNS}


def page_number(text: str | None) -> int:
    try:
        return int(text or 1)
    except ValueError:
        return 1


def admin_report(job: AnalysisJob, params: Mapping[str, str], urls: Mapping[str, str]) -> dict:
    """The context of the admin's results section; ``params``: the page's query string.

    ``urls``: ``results_json`` and ``report`` (the downloads).
    """
    counts = Counts.of(job)
    filters = Filters.known(params)
    page = result_page(job, counts, filters, page_number(params.get("page")))
    query = {key: value for key, value in params.items() if key != "page"}
    return {
        **overview(job, counts),
        "filters": filters,
        "page": page,
        "status_links": _choices(
            query,
            "status",
            filters.status,
            [(s, counts.count(filters.severity, s)) for s in counts.statuses],
        ),
        "severity_links": _choices(
            query,
            "severity",
            filters.severity,
            [(s, counts.count(s, filters.status)) for s in counts.severities],
        ),
        "page_links": _pages(query, page),
        "results_json_url": urls["results_json"],
        "report_url": urls["report"] + _query(filters_query(filters)),
    }


def filters_query(filters: Filters) -> dict[str, str]:
    return {
        key: value
        for key, value in (("status", filters.status), ("severity", filters.severity))
        if value
    }


def report_response(job: AnalysisJob, filters: Filters, *, download: bool) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        standalone_report(job, filters), content_type="text/html; charset=utf-8"
    )
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    if download:
        response["Content-Disposition"] = f'attachment; filename="report-{job.pk}.html"'
    return response


def standalone_report(job: AnalysisJob, filters: Filters) -> Iterator[str]:
    """The whole page, streamed: the rows are read and written a chunk at a time.

    The page is rendered once around a mark where the rows go; what precedes the mark is sent,
    then the rows, then the rest. Rendering happens here, before the response starts, so that
    a template error is a 500 rather than a cut-off page.
    """
    counts = Counts.of(job)
    shown = sum(n for _, n in filters.severities(counts))
    html = render_to_string(
        "analysis/report/standalone.html",
        {
            **overview(job, counts),
            "filters": filters,
            "filter_labels": [label(value) for value in filters_query(filters).values()],
            "shown": shown,
            "rows": [ROWS_MARK] if shown else [],
            "generated_at": timezone.now(),
        },
    )
    if not shown:
        return iter([html])
    head, tail = html.split(ROWS_MARK, 1)
    return _stream(head, all_rows(job, counts, filters), tail)


def _stream(head: str, rows: Iterator[SafeString], tail: str) -> Iterator[str]:
    yield head
    batch: list[str] = []
    for row in rows:
        batch.append(row)
        if len(batch) == STREAM_BATCH:
            yield "".join(batch)
            batch.clear()
    yield "".join(batch)
    yield tail


def _query(params: Mapping[str, str]) -> str:
    return "?" + urlencode(params) if params else ""


def _choices(
    query: Mapping[str, str], key: str, current: str | None, choices: list[tuple[str, int]]
) -> list[Link]:
    """ "All" and one link per choice; the current one is not a link, nor an empty choice."""
    rest = {k: v for k, v in query.items() if k != key}
    links = [Link("all", None if current is None else _query(rest) or "?", current=current is None)]
    for value, n in choices:
        href = None if value == current or not n else _query({**rest, key: value})
        links.append(Link(label(value), href, n, current=value == current))
    return links


def _pages(query: Mapping[str, str], page: Page) -> dict[str, str | None]:
    def to(number: int) -> str:
        return _query({**query, "page": str(number)} if number > 1 else dict(query)) or "?"

    previous, following = page.number > 1, page.number < page.pages
    return {
        "first": to(1) if previous else None,
        "previous": to(page.number - 1) if previous else None,
        "next": to(page.number + 1) if following else None,
        "last": to(page.pages) if following else None,
    }
