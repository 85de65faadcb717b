"""Hostile input, one test per attack: each answers a 4xx envelope and stores nothing."""

from __future__ import annotations

import base64
import json
import logging
import logging.config

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analysis.models import AnalysisEvidence, AnalysisJob, ReachabilityResult
from analysis.results import store_results
from analysis.status import JobStatus
from tests.conftest import assert_envelope, make_job
from tests.support.logs import console_handler
from tests.test_api_import import DIGEST, IMPORT, SMALL_RELEVANT, small_import

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox_disabled")]

SUBMIT = "/api/v1/analysis/submit"
LIST = "/api/v1/analysis"
BILLION_LAUGHS = b"""\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def upload(api, full_manifest: bytes):
    return api.post(
        IMPORT,
        {
            "image_ref": "nginx:1.13",
            "image_digest": DIGEST,
            "full_manifest": SimpleUploadedFile("full.yaml", full_manifest),
            "relevant_manifest": SimpleUploadedFile("r.json", json.dumps(SMALL_RELEVANT).encode()),
        },
        format="multipart",
    )


def refused(response, field: str | None, code: str, message: str) -> None:
    """A 400 VALIDATION_ERROR with exactly one error, and nothing stored."""
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert body["details"] == {"errors": [{"field": field, "code": code, "message": message}]}
    assert not AnalysisJob.objects.exists()
    assert not AnalysisEvidence.objects.exists()


# -- bounded parsing ---------------------------------------------------------------------------


def test_billion_laughs_is_refused_at_the_first_anchor(api):
    refused(
        upload(api, BILLION_LAUGHS),
        "full_manifest.a",
        "yaml_alias",
        "YAML anchors and aliases are not accepted.",
    )


@pytest.mark.parametrize(
    ("document", "field", "code", "message"),
    [
        (
            b"metadata:\n  creationTimestamp: 2024-06-01T12:00:00Z\n",
            "full_manifest.metadata.creationTimestamp",
            "not_json",
            "A timestamp is not a JSON value.",
        ),
        (b"spec:\n  day: 2024-13-45\n", "full_manifest.spec.day", "not_json", None),
        (
            b"spec:\n  blob: !!binary aGVsbG8=\n",
            "full_manifest.spec.blob",
            "not_json",
            "Binary data is not a JSON value.",
        ),
        (b"spec: !!set {a, b}\n", "full_manifest.spec", "not_json", "A set is not a JSON value."),
        (
            b"spec:\n  1: one\n",
            "full_manifest.spec.1",
            "key_type",
            "Keys must be strings; '1' is a number: quote it.",
        ),
        (
            b"true: yes\n",
            "full_manifest.true",
            "key_type",
            "Keys must be strings; 'true' is a bool: quote it.",
        ),
        (
            b"spec:\n  scores: [1.5, .nan]\n",
            "full_manifest.spec.scores.1",
            "not_json",
            ".nan is not a JSON number.",
        ),
        (b"spec:\n  max: .inf\n", "full_manifest.spec.max", "not_json", None),
        (
            b"spec:\n  n: " + b"9" * 5000 + b"\n",
            "full_manifest.spec.n",
            "number_too_long",
            "A number longer than 32 digits.",
        ),
        (
            b'spec:\n  name: "nul\\0byte"\n',
            "full_manifest.spec.name",
            "not_storable",
            "Strings may not contain NUL (\\u0000) or an unpaired surrogate.",
        ),
    ],
    ids=[
        "timestamp",
        "bad-date",
        "binary",
        "set",
        "int-key",
        "bool-key",
        "nan",
        "inf",
        "5000-digits",
        "nul",
    ],
)
def test_yaml_that_json_cannot_hold_is_refused_naming_the_path(api, document, field, code, message):
    response = upload(api, document)
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    (error,) = body["details"]["errors"]
    assert (error["field"], error["code"]) == (field, code)
    if message is not None:
        assert error["message"] == message
    assert not AnalysisJob.objects.exists()


@pytest.mark.parametrize("path", [SUBMIT, IMPORT])
def test_json_nested_a_thousand_deep_is_refused(api, path):
    body = '{"image_ref": ' + "[" * 1000 + "]" * 1000 + "}"
    response = api.generic("POST", path, body, content_type="application/json")
    refused(response, None, "max_depth", "Nested deeper than 64 levels.")


def test_a_json_body_with_too_many_values_is_refused_before_parsing(api):
    body = json.dumps({"image_ref": [[] for _ in range(100_001)]})
    response = api.generic("POST", SUBMIT, body, content_type="application/json")
    refused(response, None, "max_values", "More than 100000 values.")


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ('{"priority": ' + "7" * 5000 + "}", "number_too_long", "A number longer than 32 digits."),
        ('{"priority": NaN}', "not_json", "NaN is not a JSON value."),
        ('{"priority": 1e999}', "not_json", "The number 1e999 is out of range."),
        (
            '{"sbom_id": "\\u0000"}',
            "not_storable",
            "Strings may not contain NUL (\\u0000) or an unpaired surrogate.",
        ),
        (
            '{"sbom_id": "\\ud800"}',
            "not_storable",
            "Strings may not contain NUL (\\u0000) or an unpaired surrogate.",
        ),
    ],
    ids=["5000-digits", "nan", "overflow", "nul", "lone-surrogate"],
)
def test_json_numbers_and_strings_no_database_holds_are_refused(api, body, code, message):
    response = api.generic("POST", SUBMIT, body, content_type="application/json")
    refused(response, None, code, message)
    assert "set_int_max_str_digits" not in response.content.decode()


def test_invalid_json_says_where_not_how_the_parser_failed(api):
    response = api.generic("POST", SUBMIT, '{"image_ref": }', content_type="application/json")
    body = assert_envelope(response, 400, "MALFORMED_REQUEST", {})
    assert (
        body["message"] == "The request body is not readable: Not valid JSON (line 1, column 15)."
    )


def test_documents_inside_a_json_body_are_bounded_too(api):
    response = api.post(IMPORT, small_import(full_manifest=BILLION_LAUGHS.decode()), format="json")
    refused(response, "full_manifest.a", "yaml_alias", "YAML anchors and aliases are not accepted.")


# -- cursors and filters -----------------------------------------------------------------------


JOB_ID = "11111111-2222-4333-8444-555555555555"


def cursor(query: str) -> str:
    return base64.b64encode(query.encode()).decode()


@pytest.mark.parametrize(
    "value",
    [
        base64.b64encode(b"\xff\xfe garbage").decode(),
        "%%%not-base64",
        cursor("o=-5"),
        cursor("o=1&r=x"),
        cursor(f"p=not-a-date&p={JOB_ID}"),
        cursor(f"p=2024-13-45 99:00:00&p={JOB_ID}"),
        cursor(f"p=2024-01-01T00:00:00&p={JOB_ID}"),
        cursor("p=2024-01-01T00:00:00%2B00:00&p=not-a-uuid"),
        cursor("p=2024-01-01T00:00:00%2B00:00"),
        cursor(f"p=2024-01-01T00:00:00%2B00:00&p={JOB_ID}&p={JOB_ID}"),
        cursor(f"p=2024-01-01T00:00:00%2B00:00&p={JOB_ID}&x=1"),
        cursor(f"p=9999-12-31T23:00:00-14:00&p={JOB_ID}"),
        cursor(f"p=0001-01-01T00:00:00%2B14:00&p={JOB_ID}"),
        cursor("r=0"),
    ],
    ids=[
        "binary",
        "not-base64",
        "offset-only",
        "bad-reverse",
        "bad-position",
        "bad-date",
        "naive-date",
        "bad-id",
        "short-position",
        "long-position",
        "unknown-token",
        "after-the-calendar-in-utc",
        "before-the-calendar-in-utc",
        "forwards-from-nowhere",
    ],
)
def test_a_tampered_list_cursor_is_a_400_naming_it(api, organization, value):
    make_job(organization)
    response = api.get(LIST, {"cursor": value})
    body = assert_envelope(
        response,
        400,
        "VALIDATION_ERROR",
        {
            "errors": [
                {
                    "field": "cursor",
                    "code": "invalid",
                    "message": "Not a cursor this API gave: use a next or previous link as is.",
                }
            ]
        },
    )
    assert body["message"] == (
        "Invalid cursor: Not a cursor this API gave: use a next or previous link as is."
    )


def test_a_tampered_results_cursor_is_a_400_naming_it(api, organization):
    job = make_job(organization, status=JobStatus.COMPLETE)
    response = api.get(f"{LIST}/{job.pk}/results", {"cursor": cursor("p=abc")})
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert [e["field"] for e in body["details"]["errors"]] == ["cursor"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status_filter": ""}, "status_filter"),
        ({"status": ""}, "status"),
        ({"image_digest": ""}, "image_digest"),
        ({"image_digest": "sha256:short"}, "image_digest"),
        ({"created_after": ""}, "created_after"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "101"}, "page_size"),
        ({"page_size": "9" * 5000}, "page_size"),
    ],
)
def test_empty_and_out_of_range_query_values_are_refused_naming_them(api, query, field):
    body = assert_envelope(api.get(LIST, query), 400, "VALIDATION_ERROR")
    assert [e["field"] for e in body["details"]["errors"]] == [field]


# -- large jobs stay cheap ---------------------------------------------------------------------


RESULT = {"cve_id": "CVE-2024-0001", "status": "affected", "severity": "High", "package_name": "z"}


@pytest.fixture
def large_job(organization) -> AnalysisJob:
    job = make_job(organization, status=JobStatus.COMPLETE, summary={"total_statements": 2500})
    severities = ["Critical", "High", "Low"]
    statuses = ["affected", "not_affected"]
    store_results(
        job,
        [
            {
                **RESULT,
                "cve_id": f"CVE-2024-{i:05d}",
                "severity": severities[i % 3],
                "status": statuses[i % 2],
            }
            for i in range(2500)
        ],
    )
    AnalysisEvidence.objects.create(
        job=job,
        evidence_type="full_manifest",
        data=json.dumps({"x": "y" * 1000}),
        size_bytes=1,
        sha256="0",
    )
    return job


def test_list_status_and_evidence_never_read_results_or_documents(api, large_job):
    for url in (
        LIST,
        f"{LIST}/{large_job.pk}",
        f"{LIST}/{large_job.pk}/status",
        f"{LIST}/{large_job.pk}/evidence",
    ):
        with CaptureQueriesContext(connection) as queries:
            assert api.get(url).status_code == 200
        sql = " ".join(q["sql"] for q in queries.captured_queries)
        assert "analysis_reachabilityresult" not in sql, url
        assert '"summary"' not in sql, url
        assert '"data"' not in sql, url


def test_results_are_paged_and_filtered_with_the_summary_on_every_page(api, large_job):
    url = f"{LIST}/{large_job.pk}/results"
    first = api.get(url).json()
    assert len(first["reachability_results"]) == 100
    assert first["summary"] == {"total_statements": 2500}
    assert first["previous"] is None
    second = api.get(first["next"]).json()
    assert second["reachability_results"][0]["cve_id"] == "CVE-2024-00100"

    seen, page_url = [], f"{url}?status=affected&severity=Critical&page_size=1000"
    while page_url:
        page = api.get(page_url).json()
        seen.extend(page["reachability_results"])
        page_url = page["next"]
    expected = [i for i in range(2500) if i % 3 == 0 and i % 2 == 0]
    assert [r["cve_id"] for r in seen] == [f"CVE-2024-{i:05d}" for i in expected]
    assert ReachabilityResult.objects.filter(job=large_job).count() == 2500


def test_results_filters_are_validated(api, large_job):
    body = assert_envelope(
        api.get(f"{LIST}/{large_job.pk}/results", {"severity": "Catastrophic"}),
        400,
        "VALIDATION_ERROR",
    )
    assert [e["field"] for e in body["details"]["errors"]] == ["severity"]


# -- request bodies, headers ---------------------------------------------------------------------


def test_a_chunked_body_is_refused_not_read_as_empty(api):
    response = api.generic(
        "POST",
        SUBMIT,
        b"",
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
    )
    assert_envelope(response, 411, "LENGTH_REQUIRED", {})
    assert not AnalysisJob.objects.exists()


def oversized(client):
    return client.generic(
        "POST", SUBMIT, b"{}", content_type="application/json", CONTENT_LENGTH=str(10**9)
    )


@pytest.mark.parametrize(
    ("make_request", "status"),
    [
        (lambda client: client.get("/api/v1/nowhere"), 404),
        (oversized, 413),
        (lambda client: client.get("/api/v1/analysis", HTTP_HOST="evil.example"), 400),
        (
            lambda client: client.post(
                SUBMIT, b"", content_type="application/json", HTTP_TRANSFER_ENCODING="chunked"
            ),
            411,
        ),
        (lambda client: client.get("/api/v1/analysis"), 401),
        (lambda client: client.get("/health"), None),
    ],
    ids=["unknown-url", "too-large", "bad-host", "chunked", "no-key", "health"],
)
def test_security_headers_and_no_store_are_on_every_api_response(client, make_request, status):
    response = make_request(client)
    if status is not None:
        assert response.status_code == status
    for name, value in SECURITY_HEADERS.items():
        assert response[name] == value, name
    assert "no-store" in response["Cache-Control"]


def test_api_successes_are_not_stored_by_caches_either(api):
    response = api.get(LIST)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert response["X-Content-Type-Options"] == "nosniff"


# -- logs ------------------------------------------------------------------------------------------


@pytest.fixture(params=["text", "json"])
def production_log(request):
    """The ``reliability`` loggers writing through the project's own console formatter."""
    handler, stream = console_handler(json_lines=request.param == "json")
    logger = logging.getLogger("reliability")
    logger.addHandler(handler)
    yield request.param, stream
    logger.removeHandler(handler)


def test_an_encoded_newline_in_the_path_cannot_forge_a_log_line(client, production_log):
    form, stream = production_log
    forged = "2026-11-30 10:00:00,000 ERROR   analysis [x] Database dump completed"
    response = client.get("/api/v1/x%0A" + forged.replace(" ", "%20") + "%00%1b[31m")
    assert response.status_code == 404
    text = stream.getvalue()
    assert "\x00" not in text
    assert "\x1b" not in text
    lines = text.splitlines()
    assert not [line for line in lines if line.startswith(forged)]
    if form == "json":
        assert all(json.loads(line) for line in lines)
    else:
        (rejected,) = [line for line in lines if "rejected with" in line]
        assert "/api/v1/x\\n2026-11-30" in rejected
        assert "\\x00\\x1b[31m" in rejected


def test_a_broken_multipart_body_is_malformed_without_the_parsers_words(api):
    response = api.generic(
        "POST", IMPORT, b"--x\r\nbroken", content_type="multipart/form-data; boundary="
    )
    body = assert_envelope(response, 400, "MALFORMED_REQUEST", {})
    assert body["message"] == "The request body could not be read as multipart/form-data."


def test_the_vex_download_flag_is_a_boolean(api, organization):
    response = api.get(f"/api/v1/vex/{make_job(organization).pk}", {"download": "maybe"})
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert [e["field"] for e in body["details"]["errors"]] == ["download"]
