"""The job report: the admin's results section and the standalone HTML file of the API."""

from __future__ import annotations

import re
from collections import Counter
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from analysis.models import AnalysisJob, ReachabilityResult
from analysis.report.counts import SEVERITY_ORDER, STATUS_ORDER, Counts
from analysis.report.table import Filters, advisory_url, result_page
from analysis.results import store_results
from analysis.status import JobStatus
from analysis.vex.builder import VEX_STATUSES
from tests.conftest import assert_envelope, make_job
from tests.test_api_import import IMPORT, small_import

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox_disabled")]

ROW = re.compile(r'<tr data-severity="([^"]*)" data-status="([^"]*)">(.*?)</tr>', re.S)
BAR = re.compile(
    r'<rect class="bar" data-severity="([^"]*)" data-status="([^"]*)" data-count="(\d+)"'
)
CELL = re.compile(r"<td[^>]*>(.*?)</td>", re.S)
TAG = re.compile(r"<[^>]+>")
DASH = "\N{EN DASH}"
# Scrambled, so that storage order is not severity order.
SCRAMBLED = ("Low", "Critical", "Unknown", "High", "Negligible", "Medium")


# --- helpers ----------------------------------------------------------------------------------


def report_url(job, **params) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"/api/v1/analysis/{job.pk}/report" + (f"?{query}" if query else "")


def admin_page(client, job, **params) -> str:
    response = client.get(reverse("admin:analysis_analysisjob_change", args=[job.pk]), params)
    assert response.status_code == 200
    return response.content.decode()


def report_section(html: str) -> str:
    (section,) = re.findall(
        r'<section class="module vexxy-report" id="report".*?</section>', html, re.S
    )
    return section


def streamed(response) -> str:
    assert response.streaming
    return b"".join(response.streaming_content).decode()


def rows(html: str) -> list[tuple[str, str, list[str]]]:
    """(severity, status, cell texts) of each table row."""
    return [
        (severity, status, [unescape(TAG.sub("", cell)).strip() for cell in CELL.findall(body)])
        for severity, status, body in ROW.findall(html)
    ]


def bars(html: str) -> dict[tuple[str, str], int]:
    return {(severity, status): int(n) for severity, status, n in BAR.findall(html)}


def nonzero_cells(by_severity: dict) -> dict[tuple[str, str], int]:
    return {
        (severity, status): n
        for severity, statuses in by_severity.items()
        for status, n in statuses.items()
        if n
    }


def summary_of(results: list[dict]) -> dict:
    """The summary's counts, as the VEX builder writes them."""
    by_severity = {severity: {"affected": 0, "not_affected": 0} for severity in SEVERITY_ORDER}
    for result in results:
        by_severity[result["severity"]][result["status"]] += 1
    by_status = Counter(result["status"] for result in results)
    return {
        "total_statements": len(results),
        "by_status": {status: by_status.get(status, 0) for status in VEX_STATUSES},
        "by_severity": by_severity,
    }


def synthetic(count: int) -> list[dict]:
    return [
        {
            "cve_id": f"CVE-2024-{index:05d}",
            # of each severity's rows, the 1st, 4th, 7th... are affected
            "status": "affected" if (index // len(SCRAMBLED)) % 3 == 0 else "not_affected",
            "severity": SCRAMBLED[index % len(SCRAMBLED)],
            "package_name": f"pkg-{index}",
            "package_version": "1.0",
            "confidence_score": 0.9,
            "reason": f"reason {index}",
            "fix_state": "fixed",
            "fix_versions": ["1.1"],
        }
        for index in range(count)
    ]


def job_with(organization, results: list[dict], summary: dict | None = None) -> AnalysisJob:
    job = make_job(
        organization,
        status=JobStatus.COMPLETE,
        summary=summary_of(results) if summary is None else summary,
    )
    store_results(job, results)
    return job


def most_severe_first(results: list[dict]) -> list[str]:
    rank = {severity: index for index, severity in enumerate(SEVERITY_ORDER)}
    ordered = sorted(enumerate(results), key=lambda item: (rank[item[1]["severity"]], item[0]))
    return [result["cve_id"] for _, result in ordered]


@pytest.fixture
def imported(api) -> AnalysisJob:
    """The small nginx fixtures, through the import API."""
    response = api.post(IMPORT, small_import(), format="json")
    assert response.status_code == 201, response.json()
    return AnalysisJob.objects.get(pk=response.json()["job_id"])


# --- the imported job, in the admin and as a file -----------------------------------------------


def assert_report_matches_the_job(html: str, job: AnalysisJob) -> None:
    summary = job.summary
    shown = rows(html)
    assert len(shown) == summary["total_statements"] == 4
    assert Counter((severity, status) for severity, status, _ in shown) == Counter(
        nonzero_cells(summary["by_severity"])
    )
    assert Counter(status for _, status, _ in shown) == +Counter(summary["by_status"])
    stored = {
        (r.data["cve_id"], f"{r.data['package_name']} {r.data['package_version']}")
        for r in job.results.all()
    }
    assert {(cells[0], cells[1]) for _, _, cells in shown} == stored
    affected = [cells for _, status, cells in shown if status == "affected"]
    assert affected == [
        [
            "CVE-2007-6755",
            "libssl1.1 1.1.0f-3+deb9u2",
            "Negligible",
            "affected",
            "0.90",
            "Package libssl1.1@1.1.0f-3+deb9u2 was loaded during the observed execution, "
            "so the vulnerable code is reachable.",
            "No fix yet",
        ]
    ]
    assert bars(html) == nonzero_cells(summary["by_severity"])
    assert 'href="https://nvd.nist.gov/vuln/detail/CVE-2007-6755"' in html


def test_the_admin_job_page_shows_the_table_and_chart_of_the_summary(admin_client, imported):
    html = admin_page(admin_client, imported)
    section = report_section(html)
    assert_report_matches_the_job(section, imported)
    assert f"Results 1{DASH}4 of 4, most severe first." in section
    # the summary's facts, and no raw JSON of summary or results
    assert "<dt>Vulnerabilities</dt><dd>3</dd>" in section
    assert '"by_severity"' not in unescape(html)
    assert '"cve_id"' not in unescape(html)
    results_json = reverse("admin:analysis_job_results", args=[imported.pk])
    assert f'<a href="{results_json}">Download all results (JSON)</a>' in section


def test_the_standalone_report_shows_the_table_and_chart_of_the_summary(api, imported):
    response = api.get(report_url(imported))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert "Content-Disposition" not in response
    html = streamed(response)
    assert_report_matches_the_job(html, imported)
    assert html.startswith("<!DOCTYPE html>")
    assert html.rstrip().endswith("</html>")
    assert "<title>Reachability report: docker.io/library/nginx:1.13</title>" in html
    assert f"<dd>{imported.pk}</dd>" in html


def test_the_standalone_report_loads_nothing_from_elsewhere(api, imported):
    response = api.get(report_url(imported))
    html = streamed(response)
    assert "<script" not in html
    assert "<link" not in html
    assert "<img" not in html
    assert " src=" not in html
    assert "url(" not in html
    assert "@import" not in html
    assert "<style>" in html
    assert html.count("<svg") == 1
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs
    assert all(href.startswith("https://nvd.nist.gov/vuln/detail/") for href in hrefs)
    policy = "default-src 'none'; style-src 'unsafe-inline'"
    assert response["Content-Security-Policy"].startswith(policy)
    assert f'<meta http-equiv="Content-Security-Policy" content="{policy}">' in html


def test_download_sends_the_report_as_an_attachment(api, imported):
    response = api.get(report_url(imported, download="true"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="report-{imported.pk}.html"'
    assert len(rows(streamed(response))) == 4


def test_the_admin_downloads_the_same_report_with_its_filters(admin_client, api, imported):
    url = reverse("admin:analysis_job_report", args=[imported.pk])
    response = admin_client.get(url, {"status": "affected"})
    assert response["Content-Disposition"] == f'attachment; filename="report-{imported.pk}.html"'
    from_admin = streamed(response)
    from_api = streamed(api.get(report_url(imported, status="affected")))
    assert [cells for _, _, cells in rows(from_admin)] == [cells for _, _, cells in rows(from_api)]
    assert [status for _, status, _ in rows(from_admin)] == ["affected"]
    section = report_section(admin_page(admin_client, imported, status="affected"))
    assert f'href="{url}?status=affected"' in section


# --- order, filters and pages -------------------------------------------------------------------


def test_rows_run_from_critical_to_unknown_then_in_the_vex_order(admin_client, api, organization):
    results = synthetic(60)
    job = job_with(organization, results)
    expected = most_severe_first(results)

    page = report_section(admin_page(admin_client, job))
    assert [cells[0] for _, _, cells in rows(page)] == expected
    severities = [severity for severity, _, _ in rows(page)]
    assert list(dict.fromkeys(severities)) == list(SEVERITY_ORDER)

    standalone = streamed(api.get(report_url(job)))
    assert [cells[0] for _, _, cells in rows(standalone)] == expected


@pytest.mark.parametrize("size", [1, 7, 10, 60, 100])
def test_pages_cut_across_severities_without_losing_or_repeating_a_row(organization, size):
    results = synthetic(60)
    job = job_with(organization, results)
    counts = Counts.of(job)
    first = result_page(job, counts, Filters(), 1, size)
    shown = []
    for number in range(1, first.pages + 1):
        page = result_page(job, counts, Filters(), number, size)
        assert (page.number, page.count) == (number, 60)
        assert len(page.rows) == min(size, 60 - (number - 1) * size)
        shown += [cells[0] for _, _, cells in rows("".join(page.rows))]
    assert shown == most_severe_first(results)
    beyond = result_page(job, counts, Filters(), first.pages + 5, size)
    assert beyond.number == first.pages


def test_the_admin_pages_the_table_and_keeps_the_filters_in_its_links(admin_client, organization):
    results = synthetic(250)
    job = job_with(organization, results)
    expected = most_severe_first(results)

    first = report_section(admin_page(admin_client, job))
    assert [cells[0] for _, _, cells in rows(first)] == expected[:100]
    assert f"Results 1{DASH}100 of 250, most severe first." in first
    assert 'href="?page=2#report" rel="next"' in first
    assert "page 1 of 3" in first

    last = report_section(admin_page(admin_client, job, page=3))
    assert [cells[0] for _, _, cells in rows(last)] == expected[200:]
    assert f"Results 201{DASH}250 of 250" in last
    assert 'href="?page=2#report" rel="prev"' in last

    affected_high = [
        r["cve_id"] for r in results if (r["status"], r["severity"]) == ("affected", "High")
    ]
    filtered = report_section(admin_page(admin_client, job, status="affected", severity="High"))
    assert [cells[0] for _, _, cells in rows(filtered)] == affected_high
    assert f"Results 1{DASH}{len(affected_high)} of {len(affected_high)}" in filtered


def test_filter_links_carry_counts_and_mark_the_current_choice(admin_client, organization):
    results = synthetic(60)  # 20 affected, 40 not affected; 10 of each severity
    job = job_with(organization, results)
    section = unescape(report_section(admin_page(admin_client, job, severity="Critical")))
    assert '<a href="?severity=Critical&status=affected#report">affected (4)</a>' in section
    assert '<a href="?severity=Critical&status=not_affected#report">not affected (6)</a>' in (
        section
    )
    assert '<span class="empty">fixed (0)</span>' in section
    assert '<span class="current" aria-current="true">Critical (10)</span>' in section
    assert '<a href="?#report">all</a>' in section  # every severity again
    assert {severity for severity, _, _ in rows(section)} == {"Critical"}


def test_unknown_filter_values_in_the_admin_show_everything(admin_client, organization):
    job = job_with(organization, synthetic(12))
    section = report_section(
        admin_page(admin_client, job, status="bogus", severity="<x>", page="z")
    )
    assert len(rows(section)) == 12


def test_filters_of_the_standalone_report(api, organization):
    results = synthetic(60)
    job = job_with(organization, results)
    html = streamed(api.get(report_url(job, status="not_affected", severity="Low")))
    expected = [
        r["cve_id"] for r in results if (r["status"], r["severity"]) == ("not_affected", "Low")
    ]
    assert [cells[0] for _, _, cells in rows(html)] == expected
    assert f"{len(expected)} results (not affected, Low only), most severe first." in html

    none = streamed(api.get(report_url(job, status="fixed")))
    assert rows(none) == []
    assert "No results match." in none
    assert "0 results (fixed only)" in none


# --- a large job stays cheap --------------------------------------------------------------------


def result_queries(captured) -> list[str]:
    table = ReachabilityResult._meta.db_table
    return [query["sql"] for query in captured.captured_queries if table in query["sql"]]


def test_the_admin_page_reads_one_page_of_rows_whatever_the_job_holds(admin_client, organization):
    small = job_with(organization, synthetic(600))  # 100 of each severity
    large = job_with(organization, synthetic(6000))

    def queries(job, **params) -> tuple[int, list[str]]:
        with CaptureQueriesContext(connection) as captured:
            html = admin_page(admin_client, job, **params)
        assert len(rows(report_section(html))) == 100
        return len(captured), result_queries(captured)

    (small_count, small_reads), (large_count, large_reads) = queries(small), queries(large)
    assert small_count == large_count
    assert len(small_reads) == len(large_reads) == 1


def test_a_page_reads_only_the_severities_it_spans(admin_client, organization):
    """3010 rows, about 502 of each severity: rows 501-600 are 2 Critical and 98 High ones."""
    job = job_with(organization, synthetic(3010))
    with CaptureQueriesContext(connection) as captured:
        section = report_section(admin_page(admin_client, job, page=6))
    severities = [severity for severity, _, _ in rows(section)]
    assert severities == ["Critical"] * 2 + ["High"] * 98
    reads = result_queries(captured)
    assert len(reads) == 2
    assert "\"severity\" = 'Critical'" in reads[0]
    assert "LIMIT 2 OFFSET 500" in reads[0]
    assert "\"severity\" = 'High'" in reads[1]
    assert "LIMIT 98" in reads[1]
    assert "OFFSET" not in reads[1]
    assert all("COUNT(" not in sql.upper() for sql in reads)


def test_without_counts_in_the_summary_the_rows_are_counted(admin_client, organization):
    results = synthetic(24)
    job = job_with(organization, results, summary={"total": 24})
    section = report_section(admin_page(admin_client, job))
    assert bars(section) == nonzero_cells(summary_of(results)["by_severity"])
    assert [cells[0] for _, _, cells in rows(section)] == most_severe_first(results)


def test_the_standalone_report_streams_every_row(api, organization):
    results = synthetic(2500)
    job = job_with(organization, results)
    response = api.get(report_url(job))
    chunks = list(response.streaming_content)
    assert len(chunks) > 5  # head, batches of rows, tail: never one string of the whole page
    html = b"".join(chunks).decode()
    assert [cells[0] for _, _, cells in rows(html)] == most_severe_first(results)


def test_a_job_that_is_not_complete_has_no_report_in_the_admin(admin_client, organization):
    job = make_job(organization, status=JobStatus.FAILED, error_code="SANDBOX_ERROR")
    section = report_section(admin_page(admin_client, job))
    assert "Results appear when the job is complete; it is failed." in section
    url = reverse("admin:analysis_job_report", args=[job.pk])
    assert admin_client.get(url).status_code == 404


# --- cells ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vulnerability", "url"),
    [
        ("CVE-2024-3094", "https://nvd.nist.gov/vuln/detail/CVE-2024-3094"),
        ("GHSA-xxxx-1234-abcd", "https://github.com/advisories/GHSA-xxxx-1234-abcd"),
        ("GO-2024-2687", "https://osv.dev/vulnerability/GO-2024-2687"),
        ("../../x?y#z", "https://osv.dev/vulnerability/..%2F..%2Fx%3Fy%23z"),
    ],
)
def test_advisory_links(vulnerability, url):
    assert advisory_url(vulnerability) == url


def test_what_the_scanner_wrote_is_escaped(api, organization):
    hostile = {
        "cve_id": '<script>alert("cve")</script>',
        "status": "affected",
        "severity": "High",
        "package_name": "<img src=x onerror=alert(1)>",
        "package_version": '"><svg onload=alert(2)>',
        "reason": "</td></tr></table><script>alert(3)</script>",
        "fix_state": "unknown",
        "aliases": ["<b>alias</b>"],
    }
    job = job_with(organization, [hostile])
    html = streamed(api.get(report_url(job)))
    assert "<script" not in html
    assert "<img" not in html
    assert "<svg onload" not in html
    ((_, _, cells),) = rows(html)
    assert cells[0] == '<script>alert("cve")</script><b>alias</b>'
    assert cells[1] == '<img src=x onerror=alert(1)> "><svg onload=alert(2)>'
    assert cells[5] == "</td></tr></table><script>alert(3)</script>"
    assert cells[6] == "Not known"


@pytest.mark.parametrize(
    ("fix", "shown"),
    [
        ({"fix_state": "fixed", "fix_versions": ["1.2", "2.0"]}, "Fixed in 1.2, 2.0"),
        ({"fix_state": "not-fixed", "fix_versions": []}, "No fix yet"),
        ({"fix_state": "wont-fix"}, "Won't be fixed"),
        ({}, "Not known"),
    ],
)
def test_the_fix_column(api, organization, fix, shown):
    result = {"cve_id": "CVE-1", "status": "affected", "severity": "Low", "package_name": "a"}
    job = job_with(organization, [{**result, **fix}])
    ((_, _, cells),) = rows(streamed(api.get(report_url(job))))
    assert cells[6] == shown


def test_the_chart_draws_a_row_per_severity_and_describes_itself(api, organization):
    results = synthetic(60)
    job = job_with(organization, results)
    html = streamed(api.get(report_url(job)))
    (svg,) = re.findall(r"<svg.*?</svg>", html, re.S)
    totals = dict(
        re.findall(r'<g class="severity-row" data-severity="(\w+)" data-total="(\d+)"', svg)
    )
    assert totals == {severity: "10" for severity in SEVERITY_ORDER}
    assert 'role="img"' in svg
    assert (
        '<title id="report-chart-title">Results by severity and status (60 in all)</title>' in svg
    )
    assert "Critical: 4 affected, 0 under investigation, 0 fixed, 6 not affected;" in svg
    assert "<title>Critical, affected: 4</title>" in svg
    widths = {
        status: float(width)
        for status, width in re.findall(
            r'data-severity="High" data-status="(\w+)" data-count="\d+" x="[\d.]+" '
            r'y="[\d.]+" width="([\d.]+)"',
            svg,
        )
    }
    assert widths["not_affected"] == pytest.approx(widths["affected"] * 6 / 4, abs=0.2)


def test_every_vex_status_has_a_place_in_the_report():
    assert sorted(STATUS_ORDER) == sorted(VEX_STATUSES)


# --- the API's rules ----------------------------------------------------------------------------


def test_the_report_needs_an_api_key(client, imported):
    response = client.get(report_url(imported))
    assert_envelope(response, 401, "UNAUTHORIZED")
    assert response["WWW-Authenticate"]


def test_another_organizations_job_is_not_found(other_api, imported):
    assert_envelope(
        other_api.get(report_url(imported)),
        404,
        "RESOURCE_NOT_FOUND",
        {"resource_type": "Analysis Job", "resource_id": str(imported.pk)},
    )


@pytest.mark.parametrize("state", ["queued", "running", "analyzing", "failed", "cancelled"])
def test_a_job_that_is_not_complete_has_no_report(api, organization, state):
    job = make_job(organization, status=state)
    assert_envelope(
        api.get(report_url(job)),
        409,
        "INVALID_JOB_STATE",
        {"job_id": str(job.pk), "current_state": state, "required_state": "complete"},
    )


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"status": "bogus"}, "status", "invalid_choice"),
        ({"status": ""}, "status", "invalid_choice"),
        ({"severity": "critical"}, "severity", "invalid_choice"),
        ({"download": "maybe"}, "download", "invalid"),
    ],
)
def test_bad_query_values_are_refused_naming_the_field(api, imported, params, field, code):
    body = assert_envelope(api.get(report_url(imported, **params)), 400, "VALIDATION_ERROR")
    assert [(e["field"], e["code"]) for e in body["details"]["errors"]] == [(field, code)]


def test_a_client_that_accepts_only_json_is_told_so(api, imported):
    assert_envelope(
        api.get(report_url(imported), HTTP_ACCEPT="application/json"), 406, "NOT_ACCEPTABLE"
    )
