"""Cursor paging costs the same number of SQL queries on any page, whatever the table holds.

``GET /api/v1/analysis`` and ``GET /api/v1/analysis/{id}/results``: page 1 and the page reached
by following ``next`` three times, with few and with many rows, with and without filters.
Authentication and the throttle's cache queries are part of every request, so the counts are
compared with each other rather than written down: all of them, except the first request of a
throttle window (it creates the window's row); and, strictly, the queries of the application's
tables (the page query, nothing per row). bench/cursor_paging.py measures the time.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analysis.models import AnalysisJob, ReachabilityResult
from analysis.profiles import normalize_config
from tests.conftest import make_job

pytestmark = pytest.mark.django_db

LIST = "/api/v1/analysis"
DIGESTS = ("sha256:" + "a" * 64, "sha256:" + "b" * 64)
STATUSES = ("queued", "complete", "failed")
FOLLOWED = 3  # times ``next`` is followed after page 1
JOB_FILTERS = ({}, {"status": "queued"}, {"image_digest": DIGESTS[0]})
RESULT_FILTERS = ({}, {"status": "not_affected"}, {"severity": "High"})
JOB_TABLE = '"analysis_analysisjob"'
RESULT_TABLE = '"analysis_reachabilityresult"'
THROTTLE_KEY = re.compile(r"throttle_[\w:.-]+")
TRANSACTION = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")


def add_jobs(organization, count: int, older_than: int = 0) -> None:
    """``count`` jobs, one second apart, older than the ``older_than`` existing ones."""
    newest = timezone.now() - timedelta(seconds=older_than)
    config = normalize_config("custom", {})
    AnalysisJob.objects.bulk_create(
        AnalysisJob(
            organization=organization,
            image_ref="docker.io/library/nginx:1.25",
            image_digest=DIGESTS[i % len(DIGESTS)],
            status=STATUSES[i % len(STATUSES)],
            profile="custom",
            config=config,
            created_at=newest - timedelta(seconds=i),
        )
        for i in range(older_than, older_than + count)
    )


def add_results(job: AnalysisJob, count: int, first: int = 0) -> None:
    ReachabilityResult.objects.bulk_create(
        ReachabilityResult(
            job=job,
            position=position,
            cve_id=f"CVE-2024-{position:05d}",
            package_name=f"pkg-{position}",
            status=("affected", "not_affected")[position % 2],
            severity=("High", "Low", "Medium")[position % 3],
            data={"cve_id": f"CVE-2024-{position:05d}", "position": position},
        )
        for position in range(first, first + count)
    )


def get(api, url: str, params: dict[str, str] | None = None) -> tuple[dict[str, Any], list[str]]:
    with CaptureQueriesContext(connection) as captured:
        response = api.get(url, params)
    assert response.status_code == 200, response.content
    return response.json(), [query["sql"] for query in captured.captured_queries]


def walk(api, url: str, params: dict[str, str]) -> list[tuple[dict[str, Any], list[str]]]:
    """Page 1, then ``next`` followed FOLLOWED times: (body, SQL) of each request."""
    pages = [get(api, url, params)]
    for _ in range(FOLLOWED):
        following = pages[-1][0]["next"]
        assert following, f"fewer than {FOLLOWED + 1} pages"
        pages.append(get(api, following))
    return pages


def queries_per_request(api, url: str, filters, page_size: int) -> list[list[str]]:
    """The SQL of each request, in order: every filter, page 1 and FOLLOWED more."""
    requests = []
    for given in filters:
        requests += [sql for _, sql in walk(api, url, {**given, "page_size": str(page_size)})]
    return requests


def warm_up(api, url: str) -> None:
    """The key's first uses write last_used_at and fill the caches (key, throttle)."""
    for _ in range(3):
        get(api, url)


def application_queries(sql: list[str]) -> list[str]:
    cache_table = settings.CACHES["default"].get("LOCATION", "")
    return [
        q for q in sql if not q.startswith(TRANSACTION) and not (cache_table and cache_table in q)
    ]


def totals(requests: list[list[str]]) -> set[int]:
    """Queries per request, leaving out each throttle window's first request."""
    counts: set[int] = set()
    opened: set[str] = set()
    for sql in requests:
        windows = set(THROTTLE_KEY.findall(" ".join(sql)))
        if windows <= opened:
            counts.add(len(sql))
        opened |= windows
    return counts


def assert_constant(requests: list[list[str]], table: str) -> int:
    assert len(totals(requests)) == 1, sorted(totals(requests))
    for sql in requests:
        # The page and nothing else: no per-row query; a keyset page skips nothing (no OFFSET).
        (page_query,) = application_queries(sql)
        assert f"FROM {table}" in page_query
        assert "OFFSET" not in page_query.upper()
    return totals(requests).pop()


def test_job_list_queries_per_request_do_not_depend_on_page_or_table_size(api, organization):
    warm_up(api, LIST)
    add_jobs(organization, 10)
    few = queries_per_request(api, LIST, JOB_FILTERS, page_size=1)
    add_jobs(organization, 290, older_than=10)
    many = queries_per_request(api, LIST, JOB_FILTERS, page_size=2)

    per_request = assert_constant([*few, *many], JOB_TABLE)
    print(f"\nqueries per list request: {per_request} with 10 and with 300 jobs")


def test_every_job_is_listed_once_in_order_following_next(api, organization):
    add_jobs(organization, 25)
    seen: list[str] = []
    body, _ = get(api, LIST, {"page_size": "7"})
    while True:
        seen += [job["job_id"] for job in body["results"]]
        if not body["next"]:
            break
        body, _ = get(api, body["next"])
    expected = AnalysisJob.objects.filter(organization=organization).order_by("-created_at")
    assert seen == [str(pk) for pk in expected.values_list("pk", flat=True)]


def add_tied_jobs(organization, count: int, created_at) -> None:
    """``count`` jobs created in the same microsecond, as one bulk insert can make them."""
    config = normalize_config("custom", {})
    AnalysisJob.objects.bulk_create(
        AnalysisJob(
            organization=organization,
            image_ref="docker.io/library/nginx:1.25",
            profile="custom",
            config=config,
            created_at=created_at,
        )
        for _ in range(count)
    )


def follow(api, first: dict[str, Any], link: str) -> list[list[str]]:
    """The job ids of ``first`` and of every page reached through its ``link`` ("next" or
    "previous"), one list per page."""
    pages, body = [], first
    while True:
        pages.append([job["job_id"] for job in body["results"]])
        if not body[link]:
            return pages
        body, _ = get(api, body[link])


def test_more_than_a_thousand_jobs_of_one_microsecond_are_each_listed_once(api, organization):
    # DRF's cursor pages inside a tie by offset, cut off at 1,000: it went round in circles.
    tie = timezone.now() - timedelta(hours=1)
    add_jobs(organization, 5)  # newer than the tie, one second apart
    add_tied_jobs(organization, 1_050, tie)
    add_jobs(organization, 5, older_than=7_200)  # older than the tie
    expected = [
        str(pk)
        for pk in AnalysisJob.objects.filter(organization=organization)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)
    ]

    first, _ = get(api, LIST, {"page_size": "100"})
    forward = follow(api, first, "next")
    assert [job for page in forward for job in page] == expected
    assert [len(page) for page in forward] == [100] * 10 + [60]

    last, _ = get(api, first["next"])
    while last["next"]:
        last, _ = get(api, last["next"])
    backward = follow(api, last, "previous")
    assert backward == forward[::-1]
    assert last["next"] is None
    assert first["previous"] is None


def two_pages_then_delete(api, organization, page: int) -> tuple[dict, dict]:
    """Pages 1 and 2 of four jobs, two a page, as read before the jobs of ``page`` went."""
    add_jobs(organization, 4)
    first, _ = get(api, LIST, {"page_size": "2"})
    second, _ = get(api, first["next"])
    gone = (first, second)[page - 1]["results"]
    AnalysisJob.objects.filter(pk__in=[job["job_id"] for job in gone]).delete()
    return first, second


def test_going_back_past_deleted_jobs_leads_to_the_first_page(api, organization):
    _, second = two_pages_then_delete(api, organization, page=1)

    back, _ = get(api, second["previous"])
    assert (back["results"], back["previous"]) == ([], None)
    assert back["next"] == "http://testserver/api/v1/analysis?page_size=2"
    again, _ = get(api, back["next"])
    assert [job["job_id"] for job in again["results"]] == [
        job["job_id"] for job in second["results"]
    ]


def test_going_back_from_a_page_emptied_by_deletes_leads_to_the_last_page(api, organization):
    first, _ = two_pages_then_delete(api, organization, page=2)

    emptied, _ = get(api, first["next"])
    assert (emptied["results"], emptied["next"]) == ([], None)
    last, _ = get(api, emptied["previous"])
    assert last["results"] == first["results"]
    assert (last["previous"], last["next"]) == (None, None)


def test_results_queries_per_request_do_not_depend_on_page_or_result_count(api, organization):
    job = make_job(organization, status="complete", summary={"total_vulnerabilities": 0})
    url = f"{LIST}/{job.pk}/results"
    warm_up(api, url)
    add_results(job, 10)
    few = queries_per_request(api, url, RESULT_FILTERS, page_size=1)
    add_results(job, 490, first=10)
    many = queries_per_request(api, url, RESULT_FILTERS, page_size=2)

    requests = [*few, *many]
    assert len(totals(requests)) == 1, sorted(totals(requests))
    for sql in requests:
        job_query, page_query = application_queries(sql)  # the job, then its page of results
        assert f"FROM {JOB_TABLE}" in job_query
        assert f"FROM {RESULT_TABLE}" in page_query
        assert "OFFSET" not in page_query.upper()
    print(f"\nqueries per results request: {totals(requests).pop()} with 10 and with 500 results")
