"""The severity-by-status chart: an SVG drawn on the server, one stacked bar per severity.

No script and no external asset: it shows the same in the admin, in a saved report and in a
mail client. Every bar segment carries its severity, status and count as ``data-`` attributes
and a ``<title>`` (the tooltip, and what a screen reader says).
"""

from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from analysis.report.counts import Counts

STATUS_COLOURS = {
    "affected": "#c62828",
    "under_investigation": "#ef6c00",
    "fixed": "#1565c0",
    "not_affected": "#2e7d32",
}
OTHER_COLOUR = "#757575"

WIDTH = 640
LABEL_WIDTH = 100  # severity names, left of the bars
COUNT_WIDTH = 160  # totals, right of the bars
BAR_SPACE = WIDTH - LABEL_WIDTH - COUNT_WIDTH
ROW_HEIGHT = 28
BAR_HEIGHT = 18
LEGEND_HEIGHT = 30
LEGEND_CHARACTER_WIDTH = 7  # about, at font-size 12


def joined(parts: list[SafeString]) -> SafeString:
    return format_html_join("", "{}", ((part,) for part in parts))


def label(status: str) -> str:
    return status.replace("_", " ")


def severity_status_chart(counts: Counts) -> SafeString:
    severities, statuses = counts.severities, counts.statuses
    longest = max((counts.count(severity=s) for s in severities), default=0) or 1
    height = ROW_HEIGHT * len(severities) + LEGEND_HEIGHT
    rows = [
        _row(counts, index, severity, statuses, longest)
        for index, severity in enumerate(severities)
    ]
    description = "; ".join(
        f"{severity}: "
        + ", ".join(f"{counts.count(severity, status)} {label(status)}" for status in statuses)
        for severity in severities
    )
    return format_html(
        '<svg class="report-chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'aria-labelledby="report-chart-title report-chart-desc" '
        'font-family="system-ui, sans-serif" font-size="12">'
        '<title id="report-chart-title">Results by severity and status ({total} in all)</title>'
        '<desc id="report-chart-desc">{description}</desc>'
        "{rows}{legend}</svg>",
        width=WIDTH,
        height=height,
        total=counts.total,
        description=description,
        rows=joined(rows),
        legend=_legend(statuses, ROW_HEIGHT * len(severities)),
    )


def _row(
    counts: Counts, index: int, severity: str, statuses: tuple[str, ...], longest: int
) -> SafeString:
    top = index * ROW_HEIGHT
    bar_top = top + (ROW_HEIGHT - BAR_HEIGHT) / 2
    text_y = top + ROW_HEIGHT / 2 + 4
    segments, x = [], float(LABEL_WIDTH)
    for status in statuses:
        n = counts.count(severity, status)
        if not n:
            continue
        width = max(BAR_SPACE * n / longest, 2.0)
        segments.append(
            format_html(
                '<rect class="bar" data-severity="{severity}" data-status="{status}" '
                'data-count="{n}" x="{x}" y="{y}" width="{width}" height="{height}" '
                'fill="{fill}"><title>{severity}, {label}: {n}</title></rect>',
                severity=severity,
                status=status,
                label=label(status),
                n=n,
                x=f"{x:.1f}",
                y=f"{bar_top:.1f}",
                width=f"{width:.1f}",
                height=BAR_HEIGHT,
                fill=STATUS_COLOURS.get(status, OTHER_COLOUR),
            )
        )
        x += width
    total = counts.count(severity=severity)
    affected = counts.count(severity, "affected")
    count_text = f"{total} ({affected} affected)" if affected else str(total)
    return format_html(
        '<g class="severity-row" data-severity="{severity}" data-total="{total}">'
        '<text x="{label_x}" y="{text_y}" text-anchor="end" fill="currentColor">{severity}</text>'
        '{segments}<text class="count" x="{count_x}" y="{text_y}" fill="currentColor">'
        "{count_text}</text></g>",
        severity=severity,
        total=total,
        label_x=LABEL_WIDTH - 8,
        text_y=f"{text_y:.1f}",
        segments=joined(segments),
        count_x=f"{x + 6:.1f}",
        count_text=count_text,
    )


def _legend(statuses: tuple[str, ...], top: int) -> SafeString:
    items, x = [], LABEL_WIDTH
    for status in statuses:
        items.append(
            (x, top + 10, STATUS_COLOURS.get(status, OTHER_COLOUR), x + 18, top + 20, label(status))
        )
        x += 18 + LEGEND_CHARACTER_WIDTH * len(label(status)) + 24
    return format_html_join(
        "",
        '<g class="legend-item"><rect x="{}" y="{}" width="12" height="12" fill="{}"/>'
        '<text x="{}" y="{}" fill="currentColor">{}</text></g>',
        items,
    )
