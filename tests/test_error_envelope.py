"""Every error source under /api/ and /health answers with the one JSON envelope.

One parametrized case per error source; :func:`assert_envelope` checks the whole
envelope each time. Failing views live in ``tests/views.py``.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client

from tests.views import DRIVER_TEXT, SECRET_TEXT

pytestmark = pytest.mark.urls("tests.urls")

ENVELOPE_KEYS = {"error", "message", "details", "timestamp", "request_id"}
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
# Nothing of the failure's internals may reach a 5xx body.
INTERNALS = (
    SECRET_TEXT,
    "hunter2",
    "db.internal",
    "5432",
    DRIVER_TEXT,
    "FATAL",
    "RuntimeError",
    "OperationalError",
    "Traceback",
    "could not connect",
)
NO_SUCH_API_URL = "/api/v1/does-not-exist"


def assert_envelope(
    response,
    status: int,
    code: str,
    details: dict[str, Any],
    *,
    message: str | None = None,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
    extra_keys: frozenset[str] | set[str] = frozenset(),
) -> dict[str, Any]:
    """The whole envelope: status, media type, exactly the keys, code, details, time, ID."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == content_type
    body = json.loads(response.content)
    assert set(body) == ENVELOPE_KEYS | set(extra_keys)
    assert body["error"] == code
    assert body["details"] == details
    assert isinstance(body["message"], str)
    assert body["message"]
    if message is not None:
        assert body["message"] == message
    assert TIMESTAMP.fullmatch(body["timestamp"]), body["timestamp"]
    stamped = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - stamped) < timedelta(minutes=1)  # UTC, not local time
    assert body["request_id"]
    assert body["request_id"] == response["X-Request-ID"]
    for name, value in (headers or {}).items():
        assert response[name] == value, name
    return body


@dataclass(frozen=True)
class Source:
    """One way of failing: how to provoke it and the envelope it must produce."""

    method: str
    path: str
    status: int
    code: str
    details: dict[str, Any]
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)
    enforce_csrf: bool = False
    body_limit: int | None = None

    def send(self, settings):
        if self.body_limit is not None:
            settings.DATA_UPLOAD_MAX_MEMORY_SIZE = self.body_limit
        client = Client(enforce_csrf_checks=self.enforce_csrf)
        return getattr(client, self.method)(self.path, **self.kwargs)


def raised(name: str, *args: Any, **kwargs: Any) -> Source:
    return Source("get", f"/api/test/raise/{name}", *args, **kwargs)


def submit(body: Any, content_type: str = "application/json") -> dict[str, Any]:
    return {"data": body, "content_type": content_type}


def not_found(resource_type: str, path: str) -> dict[str, str]:
    return {"resource_type": resource_type, "resource_id": path}


INTERNAL = {"service": "vexxy"}

SOURCES = {
    "drf-field-validation": Source(
        "post",
        "/api/test/submit",
        400,
        "VALIDATION_ERROR",
        {
            "errors": [
                {"field": "image_ref", "code": "required", "message": "This field is required."},
                {
                    "field": "config.ports.0",
                    "code": "max_value",
                    "message": "Ensure this value is less than or equal to 65535.",
                },
                {
                    "field": "config.ports.2",
                    "code": "invalid",
                    "message": "A valid integer is required.",
                },
                {
                    "field": "config.mounts.1.path",
                    "code": "required",
                    "message": "This field is required.",
                },
            ]
        },
        kwargs=submit({"config": {"ports": [70000, 80, "x"], "mounts": [{"path": "/a"}, {}]}}),
    ),
    "drf-non-field-validation": Source(
        "post",
        "/api/test/submit",
        400,
        "VALIDATION_ERROR",
        {
            "errors": [
                {"field": None, "code": "forbidden", "message": "This image may not be analysed."},
            ]
        },
        kwargs=submit({"image_ref": "forbidden", "config": {"ports": [443]}}),
    ),
    "unknown-api-url": Source(
        "get",
        NO_SUCH_API_URL,
        404,
        "RESOURCE_NOT_FOUND",
        not_found("endpoint", NO_SUCH_API_URL),
    ),
    "drf-unhandled-exception": raised("runtime-error", 500, "INTERNAL_ERROR", INTERNAL),
    "plain-unhandled-exception": Source(
        "get",
        "/api/test/plain/runtime-error",
        500,
        "INTERNAL_ERROR",
        INTERNAL,
    ),
    "database-unreachable": raised(
        "operational-error",
        503,
        "DATABASE_ERROR",
        {"operation": "read"},
        headers={"Retry-After": "5"},
    ),
    "malformed-json": Source(
        "post",
        "/api/test/submit",
        400,
        "MALFORMED_REQUEST",
        {},
        kwargs=submit('{"image_ref": '),
    ),
    "drf-wrong-method": Source(
        "get",
        "/api/test/submit",
        405,
        "METHOD_NOT_ALLOWED",
        {"method": "GET", "allowed_methods": ["POST", "OPTIONS"]},
        headers={"Allow": "POST, OPTIONS"},
    ),
    "health-wrong-method": Source(
        "post",
        "/health",
        405,
        "METHOD_NOT_ALLOWED",
        {"method": "POST", "allowed_methods": ["GET", "HEAD"]},
        headers={"Allow": "GET, HEAD"},
    ),
    "wrong-media-type": Source(
        "post",
        "/api/test/submit",
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        {"media_type": "text/plain"},
        kwargs=submit("image_ref=x", content_type="text/plain"),
    ),
    "oversized-body": Source(
        "post",
        "/api/test/submit",
        413,
        "PAYLOAD_TOO_LARGE",
        {"limit_bytes": 64},
        kwargs=submit({"image_ref": "x" * 100}),
        body_limit=64,
    ),
    "disallowed-host": Source(
        "get",
        "/api/test/items/1",
        400,
        "INVALID_HOST",
        {},
        kwargs={"HTTP_HOST": "evil.example"},
    ),
    "csrf-failure-plain-view": Source(
        "post",
        "/api/test/plain/csrf",
        403,
        "FORBIDDEN",
        {},
        enforce_csrf=True,
    ),
    "drf-not-authenticated": Source(
        "get",
        "/api/test/protected",
        401,
        "UNAUTHORIZED",
        {},
        headers={"WWW-Authenticate": 'Api-Key realm="api"'},
    ),
    "drf-permission-denied": raised(
        "permission-denied",
        403,
        "FORBIDDEN",
        {},
        message="Not your job.",
    ),
    "plain-permission-denied": Source(
        "get",
        "/api/test/plain/permission-denied",
        403,
        "FORBIDDEN",
        {},
    ),
    "drf-not-found": raised(
        "not-found",
        404,
        "RESOURCE_NOT_FOUND",
        not_found("resource", "/api/test/raise/not-found"),
        message="No such thing.",
    ),
    "plain-http404": Source(
        "get",
        "/api/test/plain/not-found",
        404,
        "RESOURCE_NOT_FOUND",
        not_found("resource", "/api/test/plain/not-found"),
    ),
    "drf-throttled": raised(
        "throttled",
        429,
        "RATE_LIMITED",
        {"wait_seconds": 12},
        headers={"Retry-After": "12"},
    ),
    "quota-exceeded": raised(
        "quota-exceeded",
        429,
        "QUOTA_EXCEEDED",
        {"quota_type": "monthly_analyses", "limit": 100, "current": 100},
        message="monthly_analyses quota exceeded: 100 of 100 used",
        headers={"Retry-After": "3600"},
    ),
    "service-unavailable": raised(
        "service-unavailable",
        503,
        "SERVICE_UNAVAILABLE",
        {"service": "kubernetes", "reason": "no cluster"},
        message="kubernetes is unavailable: no cluster",
        headers={"Retry-After": "30"},
    ),
    "job-not-found": raised(
        "job-not-found",
        404,
        "RESOURCE_NOT_FOUND",
        not_found("Analysis Job", "3f1c0d2e"),
        message="Analysis Job not found: 3f1c0d2e",
    ),
    "invalid-job-state": raised(
        "invalid-job-state",
        409,
        "INVALID_JOB_STATE",
        {
            "job_id": "3f1c0d2e",
            "current_state": "running",
            "required_state": ["complete", "failed"],
        },
        message="Job 3f1c0d2e is running; this requires complete or failed",
    ),
}
# Refusals the service makes on purpose (a dependency it knows is off): no traceback to read.
EXPECTED_REFUSALS = {"service-unavailable"}
SERVER_ERRORS = {name: source for name, source in SOURCES.items() if source.status >= 500}
FAULTS = {name: source for name, source in SERVER_ERRORS.items() if name not in EXPECTED_REFUSALS}


def by_name(sources: dict[str, Source]):
    return pytest.mark.parametrize("source", list(sources.values()), ids=list(sources))


@by_name(SOURCES)
def test_error_source_answers_with_the_envelope(source: Source, settings):
    response = source.send(settings)
    assert_envelope(
        response,
        source.status,
        source.code,
        source.details,
        message=source.message,
        headers=source.headers,
    )


@by_name(SOURCES)
def test_error_is_logged_once_at_the_severity_of_its_status(source: Source, settings, log_records):
    response = source.send(settings)

    errors = [record for record in log_records if record.name == "reliability.errors"]
    assert len(errors) == 1, [record.getMessage() for record in errors]
    (record,) = errors
    assert record.error_code == source.code
    assert record.status == source.status
    assert record.request_id == response["X-Request-ID"]
    if source.status >= 500 and source in FAULTS.values():
        assert record.levelno == logging.ERROR
        assert record.exc_info
        assert record.exc_info[1] is not None
    else:
        assert record.levelno == logging.WARNING
        assert not record.exc_info
    # Django must not log the same failure a second time.
    assert not [r for r in log_records if r.name.startswith("django.")]


@by_name(FAULTS)
def test_5xx_body_hides_internals_that_the_log_keeps(source: Source, settings, log_records):
    response = source.send(settings)

    text = response.content.decode()
    leaked = [fragment for fragment in INTERNALS if fragment in text]
    assert not leaked
    (record,) = [r for r in log_records if r.name == "reliability.errors"]
    assert record.request_id == response["X-Request-ID"]
    traceback = logging.Formatter().formatException(record.exc_info)
    assert traceback.startswith("Traceback (most recent call last)")
    assert type(record.exc_info[1]).__name__ in traceback


@pytest.mark.urls("vexxy.urls")
def test_unknown_api_url_on_the_real_urlconf(client):
    assert_envelope(
        client.get(NO_SUCH_API_URL),
        404,
        "RESOURCE_NOT_FOUND",
        not_found("endpoint", NO_SUCH_API_URL),
    )


@pytest.mark.parametrize(
    ("path", "details", "message"),
    [
        (
            NO_SUCH_API_URL,
            not_found("endpoint", NO_SUCH_API_URL),
            f"No endpoint at {NO_SUCH_API_URL}",
        ),
        (
            "/api/test/raise/job-not-found",
            not_found("Analysis Job", "3f1c0d2e"),
            "Analysis Job not found: 3f1c0d2e",
        ),
    ],
    ids=["unknown-url", "drf-view"],
)
def test_problem_json_is_the_envelope_plus_rfc9457_members(client, path, details, message):
    response = client.get(path, headers={"Accept": "application/problem+json"})

    body = assert_envelope(
        response,
        404,
        "RESOURCE_NOT_FOUND",
        details,
        message=message,
        content_type="application/problem+json",
        extra_keys=PROBLEM_KEYS,
    )
    assert body["type"] == "urn:vexxy:error:resource-not-found"
    assert body["title"] == "Not Found"
    assert body["status"] == 404
    assert body["detail"] == message
    assert body["instance"] == path


@pytest.mark.django_db
def test_admin_login_page_stays_html(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"<form" in response.content


@pytest.mark.urls("vexxy.urls")
@pytest.mark.parametrize("path", ["/admin/", "/no-such-page"])
def test_a_bad_host_outside_the_api_is_a_one_line_warning(client, log_records, path):
    response = client.get(path, HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    (record,) = [r for r in log_records if r.levelno >= logging.WARNING]
    assert record.name == "reliability.errors"
    assert record.levelno == logging.WARNING
    assert record.error_code == "INVALID_HOST"
    assert not record.exc_info
    assert record.request_id == response["X-Request-ID"]


@pytest.mark.django_db
def test_missing_admin_page_is_not_the_json_envelope(admin_client, log_records):
    response = admin_client.get("/admin/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert not response.content.lstrip().startswith(b"{")
    assert response["X-Request-ID"]  # correlation still applies outside the API
    assert not [r for r in log_records if r.name == "reliability.errors"]
