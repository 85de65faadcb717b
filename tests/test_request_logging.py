"""Correlation IDs, the request_finished record, client IPs and JSON log lines."""

from __future__ import annotations

import json
import logging
import logging.config
import math
import re
import uuid
from datetime import UTC, datetime

import pytest
from django.test import Client

from reliability.correlation import correlation_scope, get_request_id
from tests.conftest import assert_envelope
from tests.support.logs import console_handler
from tests.support.settings import override_reliability

pytestmark = pytest.mark.urls("tests.urls")

RESPONSE_TIME = re.compile(r"^\d+(\.\d+)?ms$")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
REPLACED = "Replaced an invalid X-Request-ID"


def finished(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [
        r
        for r in records
        if r.name == "reliability.requests" and r.getMessage() == "request_finished"
    ]


def replaced(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.getMessage().startswith(REPLACED)]


# -- correlation IDs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_id",
    ["abc-123", "A" * 200, "trace:1/2+3=4_5.6", "7"],
    ids=["plain", "200-chars", "all-punctuation", "one-char"],
)
def test_a_valid_request_id_is_echoed_and_logged(client, log_records, request_id):
    response = client.get("/api/test/items/1", headers={"X-Request-ID": request_id})

    assert response.status_code == 200
    assert response["X-Request-ID"] == request_id
    assert [r.request_id for r in finished(log_records)] == [request_id]
    assert not replaced(log_records)


@pytest.mark.parametrize(
    "bad",
    ["A" * 201, "has space", "<script>alert(1)</script>", "", "tab\there", "ünïcode"],
    ids=["201-chars", "space", "markup", "empty", "tab", "non-ascii"],
)
def test_an_invalid_request_id_is_replaced_by_a_uuid4_and_the_swap_logged(client, log_records, bad):
    response = client.get("/api/test/items/1", HTTP_X_REQUEST_ID=bad)

    generated = response["X-Request-ID"]
    assert generated != bad
    parsed = uuid.UUID(generated)
    assert parsed.version == 4
    assert str(parsed) == generated
    (notice,) = replaced(log_records)
    assert notice.name == "reliability.requests"
    assert notice.levelno == logging.INFO
    assert generated in notice.getMessage()
    assert notice.request_id == generated
    if bad:  # the client's value itself never reaches a log line
        assert not [r for r in log_records if bad in r.getMessage()]
    assert [r.request_id for r in finished(log_records)] == [generated]


def test_the_request_id_is_on_the_requests_own_records_and_only_during_it(client, log_records):
    response = client.get("/api/test/items/7", headers={"X-Request-ID": "trace-7"})

    assert response["X-Request-ID"] == "trace-7"
    (inside_view,) = [r for r in log_records if r.name == "tests.views"]
    assert inside_view.getMessage() == "looking at item 7"
    assert inside_view.request_id == "trace-7"
    assert {r.request_id for r in log_records} == {"trace-7"}
    assert get_request_id() is None


def test_every_request_gets_its_own_generated_id(client):
    first, second = client.get("/api/test/items/1"), client.get("/api/test/items/1")
    assert first["X-Request-ID"] != second["X-Request-ID"]


# -- the request_finished record --------------------------------------------------------


def test_request_finished_carries_the_request_with_secrets_redacted(client, log_records):
    secrets = {"api_key": "AKIA-secret-1", "token": "tok-secret-2", "password": "hunter2"}
    response = client.get(
        "/api/test/items/7",
        {**secrets, "q": ["a", "b"], "page": "2"},
        headers={"User-Agent": "probe/1.0", "X-Request-ID": "req-finished-1"},
        REMOTE_ADDR="192.0.2.10",
    )

    assert response.status_code == 200
    (record,) = finished(log_records)
    assert record.levelno == logging.INFO
    assert record.method == "GET"
    assert record.path == "/api/test/items/7"
    assert record.route == "api/test/items/<int:pk>"
    assert record.query_params == {
        "api_key": "[REDACTED]",
        "token": "[REDACTED]",
        "password": "[REDACTED]",
        "q": ["a", "b"],
        "page": "2",
    }
    assert record.status == 200
    assert record.user_agent == "probe/1.0"
    assert record.client_ip == "192.0.2.10"
    assert record.request_id == "req-finished-1"
    assert record.organization is None
    assert isinstance(record.duration_ms, float)
    assert record.duration_ms >= 0
    every_value = " ".join(repr(vars(r)) for r in log_records)
    assert not [value for value in secrets.values() if value in every_value]


TOO_MANY_FIELDS = "&".join(f"f{i}=1" for i in range(1001))  # Django parses at most 1,000


def test_a_query_django_will_not_parse_keeps_the_views_answer(client, log_records):
    """DRF reads the query (``?format=``) and refuses it; the request log must not fail again."""
    refused = client.get(f"/api/test/items/5?api_key=AKIA-secret-3&{TOO_MANY_FIELDS}")
    ignored = client.get(f"/livez?{TOO_MANY_FIELDS}")  # a view that never reads the query

    assert_envelope(refused, 400, "BAD_REQUEST")
    assert ignored.status_code == 200
    assert ignored["Content-Type"] == "application/json"
    assert [(r.path, r.status, r.query_params) for r in finished(log_records)] == [
        ("/api/test/items/5", 400, None),
        ("/livez", 200, None),
    ]
    assert "AKIA-secret-3" not in " ".join(repr(vars(r)) for r in log_records)


def test_a_json_line_names_djangos_request_without_its_query(json_log):
    """Django puts the request on its own records (``django.request``, ``django.security``)."""
    from django.test import RequestFactory

    logger, lines = json_log
    request = RequestFactory().get("/api/v1/analysis", {"api_key": "AKIA-secret-4", "q": "x"})
    logger.error("Internal Server Error: %s", request.path, extra={"request": request})

    (line,) = lines()
    assert line["request"] == "GET /api/v1/analysis"
    assert "AKIA-secret-4" not in json.dumps(line)


@pytest.mark.parametrize(
    ("path", "status", "route"),
    [
        ("/api/test/items/3", 200, "api/test/items/<int:pk>"),
        ("/api/v1/does-not-exist", 404, None),
        ("/api/test/plain/runtime-error", 500, "api/test/plain/runtime-error"),
    ],
    ids=["200", "404", "500"],
)
def test_every_response_is_timed_and_logged_once(client, log_records, path, status, route):
    response = client.get(path)

    assert response.status_code == status
    assert RESPONSE_TIME.fullmatch(response["X-Response-Time"]), response["X-Response-Time"]
    (record,) = finished(log_records)
    assert record.status == status
    assert record.route == route
    assert record.request_id == response["X-Request-ID"]
    # The header and the log line report the same measurement.
    assert math.isclose(float(response["X-Response-Time"][:-2]), record.duration_ms, abs_tol=0.06)


# -- client IP ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trusted", "remote", "forwarded", "expected"),
    [
        ([], "10.0.0.5", "203.0.113.7", "10.0.0.5"),
        (["10.0.0.0/8"], "192.0.2.1", "203.0.113.7", "192.0.2.1"),
        (["10.0.0.0/8"], "10.0.0.5", "203.0.113.7", "203.0.113.7"),
        (["10.0.0.0/8"], "10.0.0.5", "198.51.100.1, 203.0.113.7, 10.0.0.9", "203.0.113.7"),
        (["10.0.0.0/8", "2001:db8::/32"], "2001:db8::1", "203.0.113.7", "203.0.113.7"),
    ],
    ids=[
        "no-trusted-proxies",
        "untrusted-remote",
        "trusted-proxy",
        "spoofed-leftmost-hop",
        "ipv6-proxy",
    ],
)
def test_client_ip_believes_forwarded_headers_only_from_trusted_proxies(
    settings, log_records, trusted, remote, forwarded, expected
):
    override_reliability(settings, TRUSTED_PROXIES=trusted)
    client = Client()  # a fresh handler: the middleware caches the parsed proxies

    client.get("/api/test/items/1", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)

    (record,) = finished(log_records)
    assert record.client_ip == expected


# -- JSON log lines -----------------------------------------------------------------------


class Unprintable:
    def __str__(self) -> str:
        raise ValueError("no text for you")

    __repr__ = __str__


def _strict_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def strict_json(line: str) -> dict:
    """RFC 8259 JSON: no NaN or Infinity, which log shippers reject."""
    return json.loads(line, parse_constant=_strict_constant)


@pytest.fixture
def json_log():
    """A logger whose handler is built like the production JSON ``console`` handler."""
    handler, stream = console_handler(json_lines=True)
    logger = logging.getLogger("tests.jsonlines")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    def lines() -> list[dict]:
        return [strict_json(line) for line in stream.getvalue().splitlines()]

    yield logger, lines
    logger.removeHandler(handler)
    logger.propagate = True


def assert_line(line: dict, level: str, message: str, request_id: str) -> None:
    assert {"timestamp", "level", "logger", "message", "request_id"} <= set(line)
    assert TIMESTAMP.fullmatch(line["timestamp"]), line["timestamp"]
    stamped = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - stamped).total_seconds()) < 60
    assert line["level"] == level
    assert line["logger"] == "tests.jsonlines"
    assert line["message"] == message
    assert line["request_id"] == request_id


def test_json_lines_carry_the_contract_keys_and_the_scope_request_id(json_log):
    logger, lines = json_log
    logger.info("outside %s", "any scope")
    with correlation_scope("abc"):
        logger.warning("inside the scope")
        try:
            raise RuntimeError("boom\nwith a second line")
        except RuntimeError:
            logger.exception("it failed")

    outside, inside, failed = lines()  # one line per record, tracebacks included
    assert_line(outside, "INFO", "outside any scope", "-")
    assert_line(inside, "WARNING", "inside the scope", "abc")
    assert_line(failed, "ERROR", "it failed", "abc")
    assert "RuntimeError: boom" in failed["exc_info"]


@pytest.mark.parametrize(
    "value",
    [
        Unprintable(),
        {3, 1, 2},
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        {("namespace", "pod"): 1},
        float("nan"),
    ],
    ids=["broken-str", "set", "datetime", "tuple-keyed-dict", "nan"],
)
def test_a_non_serialisable_extra_never_breaks_the_line(json_log, value):
    logger, lines = json_log
    with correlation_scope("odd-extra"):
        logger.info("with an odd extra", extra={"odd": value, "plain": 42})

    (line,) = lines()
    assert_line(line, "INFO", "with an odd extra", "odd-extra")
    assert line["plain"] == 42
    assert "odd" in line


@pytest.mark.django_db
def test_the_text_request_line_says_what_was_asked_and_how_it_went(client):
    handler, stream = console_handler(json_lines=False)
    logger = logging.getLogger("reliability.requests")
    logger.addHandler(handler)
    try:
        response = client.get("/api/test/items/1?token=secret", headers={"X-Request-ID": "r-1"})
    finally:
        logger.removeHandler(handler)

    (line,) = stream.getvalue().splitlines()
    duration = response["X-Response-Time"].removesuffix("ms")
    prefix = "INFO    reliability.requests [r-1] request_finished GET /api/test/items/1 200 "
    assert prefix in line
    assert float(line.rsplit(" ", 1)[1].removesuffix("ms")) == pytest.approx(float(duration), 0.1)
    assert "secret" not in line
