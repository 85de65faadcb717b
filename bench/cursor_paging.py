"""Benchmark: cursor paging of ``GET /api/v1/analysis`` over 1,000,000 jobs on PostgreSQL.

Run from the repository root (as root, or with ``DATABASE_URL`` pointing at a scratch
PostgreSQL database: the seeded organization and its jobs are left there)::

    .venv/bin/python bench/cursor_paging.py                 # 1,000,000 jobs, to page 1,000
    .venv/bin/python bench/cursor_paging.py --jobs 100000   # quicker
    .venv/bin/python bench/cursor_paging.py --ties 1000     # 1,000 jobs per created_at value

Without ``DATABASE_URL`` it starts a throwaway PostgreSQL (``initdb``/``pg_ctl`` of the newest
/usr/lib/postgresql/*/bin, as user postgres, on a free port of 127.0.0.1, removed at exit). It
migrates, seeds the jobs of one organization with one ``INSERT ... SELECT generate_series``
(every NOT NULL column filled; ``--ties`` jobs share each ``created_at``), runs ANALYZE, then,
in-process with Django's test client and a real API key, walks the list at ``--page-size``
following ``next`` to page ``--pages``. Page 1 and the last page are then requested
``--repeat`` times each, alternately; it prints the medians, their ratio against the target
(page 1,000 <= 1.5x page 1), the SQL queries per request, the page query's own median time and
its ``EXPLAIN (ANALYZE, BUFFERS)``. It asserts nothing about wall-clock time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.servers import throwaway_postgres  # noqa: E402 - after the path above

TARGET_RATIO = 1.5
LIST = "/api/v1/analysis"
DATABASE = "vexxy_bench"


# -- Django -----------------------------------------------------------------------------------


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vexxy.settings")
    # 1,000+ requests a minute from one key: the throttle must count them, not refuse them.
    os.environ["API_RATE_LIMIT"] = "100000000/minute"
    import django

    django.setup()
    logging.disable(logging.INFO)  # a request_finished line per request is noise here
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)


# -- seeding ----------------------------------------------------------------------------------

# Per column of analysis_analysisjob: a SQL expression over g (1..N) and the CTE's "at".
COLUMNS = {
    "id": "gen_random_uuid()",
    "organization_id": "%(organization)s",
    "origin": "'sandbox'",
    "image_ref": "'registry.example.com/team/app-' || (g %% 500) || ':1.' || (g %% 7)",
    "image_digest": "'sha256:' || md5('a' || (g %% 5000)) || md5('b' || (g %% 5000))",
    "image_digests": "jsonb_build_array('sha256:' || md5('a' || (g %% 5000)) || md5('b' || (g %% 5000)))",  # noqa: E501
    "sbom_id": "''",
    "profile": "(ARRAY['minimal', 'standard', 'comprehensive', 'custom'])[1 + g %% 4]",
    "config": "%(config)s::jsonb",
    "status": "CASE WHEN g %% 10 = 0 THEN 'failed' WHEN g %% 50 = 1 THEN 'cancelled' "
    "ELSE 'complete' END",
    "priority": "5",
    "progress_percent": "100",
    "current_phase": "'build'",
    "request_id": "'bench-' || g",
    "submitted_by": "'api-key:bench'",
    "celery_task_id": "'task-' || g",
    "dispatched_at": "at",
    "sandbox_name": "'vexxy-' || substr(md5(g::text), 1, 8)",
    "heartbeat_at": "at + interval '2 minutes'",
    "attempts": "1",
    "created_at": "at",
    "updated_at": "at + interval '2 minutes'",
    "started_at": "at + interval '1 second'",
    "completed_at": "at + interval '2 minutes'",
    "cancelled_at": "CASE WHEN g %% 50 = 1 THEN at + interval '1 minute' END",
    "cancelled_by": "CASE WHEN g %% 50 = 1 THEN 'api-key:bench' ELSE '' END",
    "error_code": "CASE WHEN g %% 10 = 0 THEN 'ANALYSIS_TIMEOUT' ELSE '' END",
    "error_message": "CASE WHEN g %% 10 = 0 THEN 'The analysis ran out of time.' ELSE '' END",
    "error_details": "'{}'::jsonb",
    "summary": """'{"total_vulnerabilities": 42, "loaded_components": 3}'::jsonb""",
    "execution_profile": "NULL",
    "generated_vex_id": "NULL",
}


def check_columns() -> None:
    """Every column of the model is filled here: a new NOT NULL column fails loudly."""
    from analysis.models import AnalysisJob

    columns = {field.column for field in AnalysisJob._meta.concrete_fields}
    if columns != set(COLUMNS):
        sys.exit(f"bench COLUMNS out of date: missing {columns - set(COLUMNS)}, "
                 f"unknown {set(COLUMNS) - columns}")  # fmt: skip


def seed(count: int, ties: int) -> Any:
    """The organization, ``count`` jobs newest first one second (or ``ties`` jobs) apart."""
    from django.db import connection

    from analysis.models import AnalysisJob, Organization
    from analysis.profiles import normalize_config

    check_columns()
    organization = Organization.objects.create(
        name="Bench", slug=f"bench-{os.getpid()}-{time.time_ns()}", monthly_analysis_quota=10**9
    )
    names = ", ".join(COLUMNS)
    values = ", ".join(COLUMNS.values())
    sql = (
        f"INSERT INTO {AnalysisJob._meta.db_table} ({names}) "  # noqa: S608 - our own text
        f"SELECT {values} FROM (SELECT g, now() - ((g - 1) / %(ties)s) * interval '1 second' AS at "
        f"FROM generate_series(1, %(count)s) AS g) AS s"
    )
    params = {
        "organization": organization.pk,
        "config": json.dumps(normalize_config("standard", {})),
        "ties": ties,
        "count": count,
    }
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        cursor.execute(f"ANALYZE {AnalysisJob._meta.db_table}")
    print(f"seeded {count:,} jobs in {time.perf_counter() - started:.1f} s (+ ANALYZE)")
    return organization


# -- measuring --------------------------------------------------------------------------------


def client_for(organization: Any) -> Any:
    from django.test import Client

    from analysis.api_keys import issue_key

    plaintext = issue_key(organization, "bench").plaintext
    return Client(SERVER_NAME="localhost", HTTP_AUTHORIZATION=f"Api-Key {plaintext}")


def fetch(client: Any, url: str) -> dict[str, Any]:
    response = client.get(url)
    if response.status_code != 200:
        sys.exit(f"GET {url}: {response.status_code} {response.content[:500]!r}")
    return response.json()


def walk(client: Any, first: str, pages: int) -> tuple[str, int, int]:
    """The URL of page ``pages`` (or of the last page), reached by following ``next``;
    with the pages reached and the distinct jobs seen on the way (fewer than the rows
    returned means pages repeated)."""
    url, body, reached = first, fetch(client, first), 1
    seen = {job["job_id"] for job in body["results"]}
    while reached < pages and body["next"]:
        url = body["next"]
        body = fetch(client, url)
        seen.update(job["job_id"] for job in body["results"])
        reached += 1
    return url, reached, len(seen)


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def alternate_medians(client: Any, first: str, last: str, repeat: int) -> tuple[float, float]:
    """Medians of page 1 and the last page, measured alternately (same cache and load)."""
    one, other = [], []
    for _ in range(repeat):
        one.append(median_seconds(lambda: fetch(client, first), 1))
        other.append(median_seconds(lambda: fetch(client, last), 1))
    return statistics.median(one), statistics.median(other)


def captured(client: Any, url: str) -> list[dict[str, str]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as context:
        fetch(client, url)
    return context.captured_queries


def page_query(queries: list[dict[str, str]]) -> str:
    from analysis.models import AnalysisJob

    table = f'FROM "{AnalysisJob._meta.db_table}"'
    (sql,) = [q["sql"] for q in queries if table in q["sql"]]
    return sql


def time_sql(sql: str, repeat: int) -> float:
    from django.db import connection

    def once() -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            cursor.fetchall()

    return median_seconds(once, repeat)


def explain(sql: str) -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        return [row[0] for row in cursor.fetchall()]


# -- main -------------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> bool:
    organization = seed(args.jobs, args.ties)
    client = client_for(organization)
    first = f"{LIST}?page_size={args.page_size}"
    fetch(client, first)  # the key's first use writes last_used_at
    started = time.perf_counter()
    last, reached, distinct = walk(client, first, args.pages)
    walked = time.perf_counter() - started
    print(f"walked to page {reached:,} following next in {walked:.1f} s: "
          f"{distinct:,} distinct jobs seen")  # fmt: skip
    expected = min(args.jobs, reached * args.page_size)
    if distinct != expected:
        print(f"  PAGES REPEATED OR SKIPPED: {expected:,} distinct jobs expected")
    for _ in range(3):  # warm both before timing
        fetch(client, first)
        fetch(client, last)
    page_one, page_last = alternate_medians(client, first, last, args.repeat)
    ratio = page_last / page_one
    queries_one, queries_last = captured(client, first), captured(client, last)
    sql_one, sql_last = page_query(queries_one), page_query(queries_last)
    report(args, reached, page_one, page_last, ratio, queries_one, queries_last)
    print(f"page query alone:  page 1 {time_sql(sql_one, args.repeat) * 1000:.2f} ms, "
          f"page {reached:,} {time_sql(sql_last, args.repeat) * 1000:.2f} ms (median)")  # fmt: skip
    plan = explain(sql_last)
    print(f"\npage {reached:,} query:\n  {sql_last}\n\nEXPLAIN (ANALYZE, BUFFERS):")
    for line in plan:
        print(f"  {line}")
    scans = [line.strip() for line in plan if "Scan" in line]
    print(f"\nscan of page {reached:,}: {scans[0] if scans else '?'}")
    return ratio <= TARGET_RATIO


def report(args, reached, page_one, page_last, ratio, queries_one, queries_last) -> None:
    verdict = "within" if ratio <= TARGET_RATIO else "NOT within"
    print(f"\n{args.jobs:,} jobs, page_size {args.page_size}, ties {args.ties}, "
          f"median of {args.repeat} requests each:")  # fmt: skip
    print(f"  page 1:        {page_one * 1000:8.2f} ms")
    print(f"  page {reached:<8,} {page_last * 1000:8.2f} ms")
    print(f"  ratio:         {ratio:8.2f}x   target <= {TARGET_RATIO}x: {verdict}")
    print(f"  SQL queries per request: page 1 {len(queries_one)}, page {reached:,} "
          f"{len(queries_last)}")  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=1_000, help="page to walk to")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=15, help="timed requests per page")
    parser.add_argument("--ties", type=int, default=1, help="jobs per created_at value")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    given = os.environ.get("DATABASE_URL", "")
    with contextlib.ExitStack() as stack:
        if given.startswith("postgres"):
            url = given
        else:
            server = stack.enter_context(throwaway_postgres(DATABASE))
            print(f"PostgreSQL {server.version} on {server.url}")
            url = server.url
        setup_django(url)
        within = measure(args)
        from django.db import connections

        connections.close_all()  # before the server stops
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
