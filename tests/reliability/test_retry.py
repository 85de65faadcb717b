"""Retries with backoff: injected failures, a fake clock (``sleep=``) and fixed randomness."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from email.utils import formatdate

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from kubernetes.client.exceptions import ApiException
from rest_framework.exceptions import ValidationError as DRFValidationError

from reliability import exceptions as ours
from reliability.retry import RetryConfig, parse_retry_after, retry_with_backoff
from reliability.settings import DEFAULTS
from tests.support.settings import override_reliability


def api_error(status: int, retry_after: str | None = None) -> ApiException:
    error = ApiException(status=status, reason="x")
    error.headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return error


class Throttled(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__("throttled")
        self.retry_after = retry_after


@dataclass
class Run:
    calls: int = 0
    result: object = None
    error: BaseException | None = None
    delays: list[float] = field(default_factory=list)


def run(failures, *, exceptions=Exception, rand=lambda: 1.0, config=None, **cfg):
    """Call a function that raises ``failures`` in turn, then returns "ok", under the policy."""
    outcome, pending = Run(), list(failures)
    if config is None and cfg:
        config = RetryConfig(**{"max_attempts": 5, "initial_delay": 1.0, **cfg})

    def flaky():
        outcome.calls += 1
        if pending:
            raise pending.pop(0)
        return "ok"

    try:
        decorate = retry_with_backoff(exceptions, config, sleep=outcome.delays.append, rand=rand)
        outcome.result = decorate(flaky)()
    except Exception as error:
        outcome.error = error
    return outcome


# -- attempts ----------------------------------------------------------------------


def test_succeeds_on_the_third_attempt():
    outcome = run([ConnectionError(), ConnectionError()], max_attempts=5)
    assert (outcome.result, outcome.error, outcome.calls) == ("ok", None, 3)
    assert len(outcome.delays) == 2


def test_gives_up_after_max_attempts_and_reraises_the_original():
    failures = [ConnectionError(n) for n in range(5)]
    outcome = run(failures, max_attempts=3)
    assert outcome.calls == 3
    assert outcome.error is failures[2]
    assert len(outcome.delays) == 2


def test_one_attempt_means_no_retry():
    failure = ConnectionError()
    outcome = run([failure], max_attempts=1)
    assert (outcome.calls, outcome.error, outcome.delays) == (1, failure, [])


def test_wrapper_passes_arguments_and_keeps_the_name():
    @retry_with_backoff(config=RetryConfig(max_attempts=1), sleep=pytest.fail)
    def add(a, b=0):
        return a + b

    assert add(1, b=2) == 3
    assert add.__name__ == "add"


# -- delays ------------------------------------------------------------------------

CAPS = [1.0, 2.0, 4.0, 5.0, 5.0]  # initial 1, base 2, max_delay 5


@pytest.mark.parametrize("fraction", [1.0, 0.0, 0.5])
def test_full_jitter_scales_the_exponential_cap(fraction):
    outcome = run(
        [ConnectionError()] * 5,
        rand=lambda: fraction,
        max_attempts=6,
        initial_delay=1.0,
        max_delay=5.0,
    )
    assert outcome.result == "ok"
    assert outcome.delays == [fraction * cap for cap in CAPS]


def test_jittered_delays_stay_within_bounds():
    config = RetryConfig(max_attempts=60, initial_delay=0.1, max_delay=3.0, exponential_base=1.7)
    outcome = run([ConnectionError()] * 59, rand=random.Random(1234).random, config=config)
    caps = [config.backoff_cap(n) for n in range(1, 60)]
    assert caps[-1] == 3.0
    assert len(outcome.delays) == 59
    assert all(0.0 <= delay <= cap for delay, cap in zip(outcome.delays, caps, strict=True))
    assert len(set(outcome.delays)) == 59  # jitter really varies
    assert sum(delay < cap / 2 for delay, cap in zip(outcome.delays, caps, strict=True)) > 10


def test_without_jitter_the_delays_are_the_capped_exponential():
    outcome = run(
        [ConnectionError()] * 5,
        rand=lambda: 0.0,
        max_attempts=6,
        initial_delay=0.5,
        max_delay=10.0,
        exponential_base=3.0,
        jitter=False,
    )
    assert outcome.delays == [0.5, 1.5, 4.5, 10.0, 10.0]


# -- Retry-After ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "server_wait"),
    [
        (Throttled(7), 7.0),
        (api_error(503, "5"), 5.0),
        (api_error(429, "5"), 5.0),
        (ours.ServiceUnavailableError("kubernetes", "down", retry_after=12), 12.0),
    ],
    ids=["attribute", "header-503", "header-429", "service-unavailable"],
)
def test_server_retry_after_is_a_floor(failure, server_wait):
    outcome = run([failure], rand=lambda: 0.0, max_delay=60.0)
    assert outcome.result == "ok"
    assert outcome.delays == [server_wait]

    # A jittered delay above the floor is kept.
    outcome = run([failure], rand=lambda: 1.0, initial_delay=20.0, max_delay=60.0)
    assert outcome.delays == [20.0]


@pytest.mark.parametrize(
    "failure", [Throttled(120), api_error(503, "120")], ids=["attribute", "header"]
)
def test_retry_after_beyond_max_delay_stops_at_once(failure):
    outcome = run([failure], max_attempts=5, max_delay=60.0)
    assert (outcome.calls, outcome.error, outcome.delays) == (1, failure, [])


# -- what is retried -------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        api_error(404),
        api_error(400),
        api_error(409),
        ours.ResourceNotFoundError("Analysis Job", "x"),
        ours.ValidationError(errors=[]),
        DRFValidationError("bad"),
        DjangoValidationError("bad"),
    ],
    ids=lambda failure: f"{type(failure).__name__}-{getattr(failure, 'status', '')}",
)
def test_client_errors_are_not_retried(failure):
    outcome = run([failure], max_attempts=5)
    assert (outcome.calls, outcome.error, outcome.delays) == (1, failure, [])


@pytest.mark.parametrize(
    "failure",
    [
        api_error(429),
        api_error(503),
        api_error(500),
        api_error(408),
        ours.ServiceUnavailableError("kubernetes", "down", retry_after=None),
        ours.DatabaseError("connect", unreachable=True),
        ConnectionError(),
    ],
    ids=lambda failure: f"{type(failure).__name__}-{getattr(failure, 'status', '')}",
)
def test_server_errors_are_retried(failure):
    outcome = run([failure], max_attempts=5)
    assert (outcome.calls, outcome.result) == (2, "ok")


def test_only_the_listed_exceptions_are_retried():
    outcome = run([ConnectionResetError()], exceptions=(ConnectionError,), max_attempts=5)
    assert (outcome.calls, outcome.result) == (2, "ok")

    failure = ValueError("not listed")
    outcome = run([failure], exceptions=(ConnectionError,), max_attempts=5)
    assert (outcome.calls, outcome.error, outcome.delays) == (1, failure, [])


# -- logging -------------------------------------------------------------------------


def retry_records(caplog, level):
    return [r for r in caplog.records if r.name == "reliability.retry" and r.levelname == level]


def test_a_warning_per_retry_and_no_error_on_success(caplog):
    caplog.set_level("INFO", logger="reliability.retry")
    outcome = run([ConnectionError(), ConnectionError()], max_attempts=5)
    assert outcome.result == "ok"
    warnings = retry_records(caplog, "WARNING")
    assert [r.attempt for r in warnings] == [1, 2]
    assert [r.delay_seconds for r in warnings] == outcome.delays
    assert retry_records(caplog, "ERROR") == []


def test_one_error_when_exhausted(caplog):
    caplog.set_level("INFO", logger="reliability.retry")
    outcome = run([ConnectionError()] * 3, max_attempts=3)
    assert isinstance(outcome.error, ConnectionError)
    assert len(retry_records(caplog, "WARNING")) == 2
    [error] = retry_records(caplog, "ERROR")
    assert error.attempt == 3
    assert error.error_type == "ConnectionError"
    assert {r.name for r in caplog.records if r.levelname in {"WARNING", "ERROR"}} == {
        "reliability.retry"
    }


# -- configuration ---------------------------------------------------------------------


def test_retry_config_defaults_come_from_settings(settings):
    default = RetryConfig()
    configured = {**DEFAULTS, **getattr(settings, "RELIABILITY", {})}
    assert (default.max_attempts, default.initial_delay, default.max_delay) == (
        configured["DEFAULT_MAX_RETRIES"],
        configured["DEFAULT_INITIAL_DELAY"],
        configured["DEFAULT_MAX_DELAY"],
    )
    override_reliability(
        settings, DEFAULT_MAX_RETRIES=7, DEFAULT_INITIAL_DELAY=0.25, DEFAULT_MAX_DELAY=9.0
    )
    config = RetryConfig()
    assert (config.max_attempts, config.initial_delay, config.max_delay) == (7, 0.25, 9.0)
    assert (config.exponential_base, config.jitter) == (2.0, True)


def test_decorator_without_config_reads_settings_at_call_time(settings):
    override_reliability(settings, DEFAULT_MAX_RETRIES=2, DEFAULT_INITIAL_DELAY=0.5)
    outcome = run([ConnectionError()] * 5)
    assert outcome.calls == 2
    assert outcome.delays == [0.5]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": -1}, "max_attempts"),
        ({"initial_delay": -1.0}, "negative"),
        ({"max_delay": -1.0}, "negative"),
    ],
)
def test_retry_config_rejects_nonsense(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RetryConfig(**kwargs)


# -- Retry-After parsing ------------------------------------------------------------------

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("5", 5.0),
        (" 12 ", 12.0),
        ("0", 0.0),
        (formatdate(NOW + 90, usegmt=True), 90.0),
        (formatdate(NOW - 90, usegmt=True), 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
    ],
)
def test_parse_retry_after(raw, seconds):
    assert parse_retry_after(raw, now=NOW) == seconds
