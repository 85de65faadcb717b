"""The exception hierarchy: codes, statuses and details are the API contract."""

from __future__ import annotations

import builtins
import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from rest_framework.exceptions import APIException

from analysis import exceptions as domain
from reliability import exceptions as exc

ENVELOPE_KEYS = {"error", "message", "details", "timestamp", "request_id"}
# CASES below are built at collection, which may be long before their test runs.
COLLECTED = datetime.now(UTC).replace(microsecond=0)
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
FIELD_ERROR = {"field": "config.ports.0", "code": "max_value", "message": "Too large."}

# (instance, HTTP status, error code, exact details)
CASES = [
    pytest.param(exc.VexxyException(), 500, "INTERNAL_ERROR", {}, id="VexxyException"),
    pytest.param(
        exc.ValidationError(errors=[FIELD_ERROR]),
        400,
        "VALIDATION_ERROR",
        {"errors": [FIELD_ERROR]},
        id="ValidationError",
    ),
    pytest.param(
        domain.InvalidImageError("nginx:latest", "no digest"),
        400,
        "INVALID_IMAGE",
        {"image_ref": "nginx:latest", "reason": "no digest"},
        id="InvalidImageError",
    ),
    pytest.param(
        domain.InvalidConfigurationError("config.ports"),
        400,
        "INVALID_CONFIGURATION",
        {"config_key": "config.ports"},
        id="InvalidConfigurationError",
    ),
    pytest.param(exc.UnauthorizedError(), 401, "UNAUTHORIZED", {}, id="UnauthorizedError"),
    pytest.param(exc.ForbiddenError(), 403, "FORBIDDEN", {}, id="ForbiddenError"),
    pytest.param(
        exc.ResourceNotFoundError("Widget", 7),
        404,
        "RESOURCE_NOT_FOUND",
        {"resource_type": "Widget", "resource_id": "7"},
        id="ResourceNotFoundError",
    ),
    pytest.param(
        domain.JobNotFoundError("j-1"),
        404,
        "RESOURCE_NOT_FOUND",
        {"resource_type": "Analysis Job", "resource_id": "j-1"},
        id="JobNotFoundError",
    ),
    pytest.param(
        exc.ResourceConflictError(), 409, "RESOURCE_CONFLICT", {}, id="ResourceConflictError"
    ),
    pytest.param(
        domain.InvalidJobStateError("j-1", "running", ["complete"]),
        409,
        "INVALID_JOB_STATE",
        {"job_id": "j-1", "current_state": "running", "required_state": ["complete"]},
        id="InvalidJobStateError",
    ),
    pytest.param(
        domain.QuotaExceededError("monthly_analyses", 100, 100, retry_after=3600),
        429,
        "QUOTA_EXCEEDED",
        {"quota_type": "monthly_analyses", "limit": 100, "current": 100},
        id="QuotaExceededError",
    ),
    pytest.param(
        exc.RateLimitedError(2.4), 429, "RATE_LIMITED", {"wait_seconds": 3}, id="RateLimitedError"
    ),
    pytest.param(exc.TooManyRequestsError(), 429, "TOO_MANY_REQUESTS", {}, id="TooManyRequests"),
    pytest.param(
        exc.InternalServiceError("celery"),
        500,
        "INTERNAL_ERROR",
        {"service": "celery"},
        id="InternalServiceError",
    ),
    pytest.param(
        domain.WorkerLostError(3), 500, "WORKER_LOST", {"attempts": 3}, id="WorkerLostError"
    ),
    pytest.param(
        exc.DatabaseError("insert"),
        500,
        "DATABASE_ERROR",
        {"operation": "insert"},
        id="DatabaseError",
    ),
    pytest.param(
        exc.DatabaseError("connect", unreachable=True),
        503,
        "DATABASE_ERROR",
        {"operation": "connect"},
        id="DatabaseError-unreachable",
    ),
    pytest.param(
        exc.ExternalServiceError("registry"),
        502,
        "EXTERNAL_SERVICE_ERROR",
        {"service": "registry"},
        id="ExternalServiceError",
    ),
    pytest.param(
        domain.KubernetesError(
            "create_deployment", status_code=409, resource="deployments/vexxy-1"
        ),
        502,
        "KUBERNETES_ERROR",
        {"operation": "create_deployment", "status_code": 409, "resource": "deployments/vexxy-1"},
        id="KubernetesError",
    ),
    pytest.param(domain.KubescapeError(), 502, "KUBESCAPE_ERROR", {}, id="KubescapeError"),
    pytest.param(
        domain.SandboxError("vexxy-abc", "CrashLoopBackOff"),
        502,
        "SANDBOX_ERROR",
        {"sandbox_id": "vexxy-abc", "reason": "CrashLoopBackOff"},
        id="SandboxError",
    ),
    pytest.param(
        exc.ServiceUnavailableError("kubernetes", "circuit open"),
        503,
        "SERVICE_UNAVAILABLE",
        {"service": "kubernetes", "reason": "circuit open"},
        id="ServiceUnavailableError",
    ),
    pytest.param(
        exc.OperationTimeoutError("read_manifest", 2.5),
        504,
        "TIMEOUT",
        {"operation": "read_manifest", "timeout_seconds": 2.5},
        id="TimeoutError",
    ),
    pytest.param(
        domain.AnalysisTimeoutError("j-1", "wait_kubescape", 600),
        504,
        "ANALYSIS_TIMEOUT",
        {"job_id": "j-1", "phase": "wait_kubescape", "timeout_seconds": 600},
        id="AnalysisTimeoutError",
    ),
    pytest.param(exc.BadRequestError(), 400, "BAD_REQUEST", {}, id="BadRequestError"),
    pytest.param(
        exc.MalformedRequestError(), 400, "MALFORMED_REQUEST", {}, id="MalformedRequestError"
    ),
    pytest.param(exc.InvalidHostError(), 400, "INVALID_HOST", {}, id="InvalidHostError"),
    pytest.param(
        exc.MethodNotAllowedError("PUT", ["GET", "POST"]),
        405,
        "METHOD_NOT_ALLOWED",
        {"method": "PUT", "allowed_methods": ["GET", "POST"]},
        id="MethodNotAllowedError",
    ),
    pytest.param(exc.NotAcceptableError(), 406, "NOT_ACCEPTABLE", {}, id="NotAcceptableError"),
    pytest.param(exc.LengthRequiredError(), 411, "LENGTH_REQUIRED", {}, id="LengthRequiredError"),
    pytest.param(
        exc.PayloadTooLargeError(1024),
        413,
        "PAYLOAD_TOO_LARGE",
        {"limit_bytes": 1024},
        id="PayloadTooLargeError",
    ),
    pytest.param(
        exc.UnsupportedMediaTypeError("text/plain"),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        {"media_type": "text/plain"},
        id="UnsupportedMediaTypeError",
    ),
]


def test_every_exception_class_is_covered_and_exported():
    defined = {
        obj
        for module in (exc, domain)
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, exc.VexxyException)
    }
    assert defined == {type(case.values[0]) for case in CASES}
    assert {cls.__name__ for cls in defined if cls.__module__ == exc.__name__} <= set(exc.__all__)


@pytest.mark.parametrize(("error", "status", "code", "details"), CASES)
def test_status_code_and_details(error, status, code, details):
    assert error.status_code == status
    assert error.error_code == code
    assert error.details == details
    assert str(error) == error.message
    assert error.message


@pytest.mark.parametrize(("error", "status", "code", "details"), CASES)
def test_to_dict_is_the_five_key_envelope(error, status, code, details):
    body = error.to_dict("req-42")
    assert set(body) == ENVELOPE_KEYS
    assert body["error"] == code
    assert body["message"] == error.message
    assert body["details"] == details
    assert body["request_id"] == "req-42"
    assert error.to_dict()["request_id"] is None
    assert json.loads(json.dumps(body)) == body

    assert TIMESTAMP.match(body["timestamp"]), body["timestamp"]
    moment = datetime.fromisoformat(body["timestamp"])
    assert moment.utcoffset() == timedelta(0)
    assert COLLECTED <= moment <= datetime.now(UTC)


def test_utc_timestamp_converts_to_utc():
    paris = timezone(timedelta(hours=1))
    moment = datetime(2026, 11, 28, 11, 0, 0, 123456, tzinfo=paris)
    assert exc.utc_timestamp(moment) == "2026-11-28T10:00:00.123456Z"


def test_details_are_copied_from_the_caller():
    given = {"k": 1}
    error = exc.VexxyException("boom", given)
    given["k"] = 2
    assert error.details == {"k": 1}


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (domain.JobNotFoundError("abc"), "Analysis Job not found: abc"),
        (exc.ResourceNotFoundError("Widget", 1, message="gone"), "gone"),
        (exc.ForbiddenError(), exc.ForbiddenError.default_detail),
        (
            domain.InvalidJobStateError("j", "running", ["complete", "failed"]),
            "Job j is running; this requires complete or failed",
        ),
        (exc.OperationTimeoutError("poll", 2.5), "poll timed out after 2.5s"),
    ],
)
def test_messages(error, message):
    assert error.message == message


def test_validation_error_exposes_its_errors():
    error = exc.ValidationError("bad", errors=[FIELD_ERROR], details={"hint": "x"})
    assert error.errors == [FIELD_ERROR]
    assert error.details == {"errors": [FIELD_ERROR], "hint": "x"}
    assert exc.ValidationError().details == {"errors": []}


def test_database_error_unreachable_is_503_only_for_that_instance():
    unreachable = exc.DatabaseError("connect", unreachable=True)
    assert unreachable.status_code == 503
    assert unreachable.retry_after is not None
    assert exc.DatabaseError.status_code == 500
    assert exc.DatabaseError("connect").status_code == 500
    assert exc.DatabaseError("connect").retry_after is None


def test_kubernetes_error_keeps_the_upstream_status_apart_from_its_own():
    error = domain.KubernetesError("list_pods", status_code=404)
    assert error.status_code == 502
    assert error.upstream_status == 404
    assert error.details["status_code"] == 404


def test_unauthorized_error_carries_www_authenticate():
    assert exc.UnauthorizedError().headers["WWW-Authenticate"] == 'Api-Key realm="api"'
    bearer = exc.UnauthorizedError(auth_scheme="Bearer", headers={"X-Extra": "1"})
    assert bearer.headers["WWW-Authenticate"].startswith("Bearer ")
    assert bearer.headers["X-Extra"] == "1"


def test_unauthorized_error_leaves_the_callers_headers_alone():
    shared = {"X-Extra": "1"}
    exc.UnauthorizedError(headers=shared)
    assert shared == {"X-Extra": "1"}
    bearer = exc.UnauthorizedError(auth_scheme="Bearer", headers=shared)
    assert bearer.headers["WWW-Authenticate"].startswith("Bearer ")


def test_method_not_allowed_carries_allow():
    assert exc.MethodNotAllowedError("PUT", ["GET", "POST"]).headers == {"Allow": "GET, POST"}
    assert exc.MethodNotAllowedError("PUT").headers == {}


@pytest.mark.parametrize(
    ("error", "retry_after"),
    [
        (domain.QuotaExceededError("monthly_analyses", 10, 10, retry_after=3600), 3600),
        # rounded up: a client that waits Retry-After seconds is let in
        (exc.RateLimitedError(2.4), 3),
        (exc.RateLimitedError(2.0), 2),
        (exc.RateLimitedError(0.2), 1),
        (exc.RateLimitedError(None), None),
        (exc.ServiceUnavailableError("kubernetes", "down"), 30),
        (exc.ServiceUnavailableError("kubernetes", "down", retry_after=7), 7),
        (exc.DatabaseError("connect", unreachable=True, retry_after=9), 9),
        (exc.VexxyException(), None),
    ],
)
def test_retry_after(error, retry_after):
    assert error.retry_after == retry_after


def test_rate_limited_wait_seconds_match_retry_after():
    error = exc.RateLimitedError(2.1)
    assert error.details["wait_seconds"] == error.retry_after == 3


@pytest.mark.parametrize(
    ("cls", "base"),
    [
        (domain.JobNotFoundError, exc.ResourceNotFoundError),
        (domain.KubernetesError, exc.ExternalServiceError),
        (domain.KubescapeError, exc.ExternalServiceError),
        (domain.SandboxError, exc.ExternalServiceError),
        (domain.AnalysisTimeoutError, exc.OperationTimeoutError),
        (exc.MalformedRequestError, exc.BadRequestError),
        (exc.InvalidHostError, exc.BadRequestError),
        (exc.ValidationError, exc.VexxyException),
        (exc.VexxyException, Exception),
    ],
)
def test_subclass_relationships(cls, base):
    assert issubclass(cls, base)


def test_no_class_is_named_like_a_builtin():
    ours = {name for name in dir(exc) if isinstance(getattr(exc, name), type)}
    assert ours & set(dir(builtins)) == set()
    assert not issubclass(domain.AnalysisTimeoutError, builtins.TimeoutError)
    with pytest.raises(exc.OperationTimeoutError):
        raise domain.AnalysisTimeoutError("j", "deploy", 5)


def test_every_error_is_a_drf_api_exception_whose_code_is_the_apis():
    error = domain.InvalidJobStateError("j-1", "running", "complete")
    assert isinstance(error, APIException)
    assert error.default_code == error.error_code == "INVALID_JOB_STATE"
    assert (error.status_code, str(error.detail), error.detail.code) == (
        409,
        "Job j-1 is running; this requires complete",
        "INVALID_JOB_STATE",
    )


def test_repr_names_class_and_code():
    assert repr(domain.JobNotFoundError("abc")).startswith("JobNotFoundError(RESOURCE_NOT_FOUND, ")
