"""A job's results as rows: written in order, every value back exactly as stored.

On PostgreSQL they go by ``COPY`` in its text format, where a backslash, a tab, a newline,
``\\N`` and ``\\.`` mean something; the values below must come back as they went in.
"""

from __future__ import annotations

import pytest

from analysis.models import ReachabilityResult
from analysis.results import RESULT_BATCH, store_results
from analysis.status import JobStatus
from tests.conftest import make_job

pytestmark = pytest.mark.django_db

AWKWARD = [
    "back\\slash",
    "tab\there",
    "new\nline\r\n",
    "\\N",
    "\\.",
    "quote \" and ' both",
    "unicode: é 漢字 🦀",
    "",
]


def result(index: int, text: str) -> dict:
    return {
        "cve_id": f"CVE-2026-{index:05d}",
        "package_name": text or "empty",
        "status": "affected" if index % 2 else "not_affected",
        "severity": "High",
        "reason": text,
        "confidence_score": 0.25,
        "nested": {"list": [text, None, True, 1.5], "empty": {}},
    }


def test_rows_come_back_in_order_and_unchanged(organization):
    job = make_job(organization, status=JobStatus.COMPLETE)
    results = [result(i, AWKWARD[i % len(AWKWARD)]) for i in range(RESULT_BATCH + 7)]

    store_results(job, results)

    rows = list(
        ReachabilityResult.objects.filter(job=job)
        .order_by("position")
        .values_list("position", "cve_id", "package_name", "status", "severity", "data")
    )
    assert [row[0] for row in rows] == list(range(len(results)))
    assert [row[5] for row in rows] == results
    assert [row[1:5] for row in rows] == [
        (r["cve_id"], r["package_name"], r["status"], r["severity"]) for r in results
    ]


def test_no_results_write_no_rows(organization):
    job = make_job(organization, status=JobStatus.COMPLETE)

    store_results(job, [])

    assert not ReachabilityResult.objects.filter(job=job).exists()
