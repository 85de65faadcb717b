"""Circuit breakers on the shared Django cache, with a fake clock, threads and real processes."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection

from reliability import circuit
from reliability.circuit import CircuitBreaker, CircuitState, get_breaker, known_breakers
from reliability.exceptions import ServiceUnavailableError
from tests.support.settings import override_reliability

THRESHOLD, RECOVERY = 3, 30.0


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clean_cache, clock) -> CircuitBreaker:
    return CircuitBreaker(
        f"test-{uuid.uuid4().hex[:8]}",
        failure_threshold=THRESHOLD,
        recovery_timeout=RECOVERY,
        expected_exceptions=(ConnectionError,),
        clock=clock,
    )


class Calls:
    """A callable that records its calls and raises ``error`` if given."""

    def __init__(self, error: BaseException | None = None, result: object = "ok") -> None:
        self.count, self.error, self.result = 0, error, result

    def __call__(self, *args, **kwargs):
        self.count += 1
        if self.error is not None:
            raise self.error
        return self.result


def fail(breaker: CircuitBreaker, times: int, error: type[BaseException] = ConnectionError):
    for _ in range(times):
        with pytest.raises(error):
            breaker.call(Calls(error()))


def trip(breaker: CircuitBreaker) -> None:
    fail(breaker, breaker.failure_threshold)
    assert breaker.state() is CircuitState.OPEN


def rejected(breaker: CircuitBreaker) -> ServiceUnavailableError:
    fn = Calls()
    with pytest.raises(ServiceUnavailableError) as info:
        breaker.call(fn)
    assert fn.count == 0, "an open circuit must not call the function"
    return info.value


# -- closed -> open -----------------------------------------------------------------


def test_opens_after_threshold_consecutive_failures(breaker):
    fail(breaker, THRESHOLD - 1)
    assert breaker.state() is CircuitState.CLOSED
    assert breaker.call(Calls()) == "ok"  # still admitted
    fail(breaker, THRESHOLD)
    assert breaker.state() is CircuitState.OPEN


def test_a_success_resets_the_count(breaker):
    fail(breaker, THRESHOLD - 1)
    breaker.call(Calls())
    fail(breaker, THRESHOLD - 1)
    assert breaker.state() is CircuitState.CLOSED
    assert breaker.snapshot()["failures"] == THRESHOLD - 1


def test_unexpected_exceptions_do_not_count(breaker):
    fail(breaker, THRESHOLD * 2, error=ValueError)
    assert breaker.state() is CircuitState.CLOSED
    assert breaker.snapshot()["failures"] == 0


def test_threshold_must_be_positive():
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("bad", failure_threshold=0)


# -- open ------------------------------------------------------------------------------


def test_open_rejects_with_the_remaining_recovery_time(breaker, clock):
    trip(breaker)
    clock.advance(12)
    error = rejected(breaker)
    assert error.retry_after == RECOVERY - 12
    assert error.status_code == 503
    assert error.error_code == "SERVICE_UNAVAILABLE"
    assert error.details == {"service": breaker.name, "reason": "circuit open"}


def test_half_open_once_the_recovery_timeout_has_passed(breaker, clock):
    trip(breaker)
    clock.advance(RECOVERY - 0.001)
    assert breaker.state() is CircuitState.OPEN
    clock.advance(0.001)
    assert breaker.state() is CircuitState.HALF_OPEN


def test_probe_success_closes(breaker, clock):
    trip(breaker)
    clock.advance(RECOVERY)
    probe = Calls(result=42)
    assert breaker.call(probe) == 42
    assert probe.count == 1
    assert breaker.state() is CircuitState.CLOSED
    fail(breaker, THRESHOLD - 1)  # the count starts from zero again
    assert breaker.state() is CircuitState.CLOSED


def test_probe_failure_reopens_with_a_fresh_window(breaker, clock):
    trip(breaker)
    clock.advance(RECOVERY + 5)
    fail(breaker, 1)
    assert breaker.state() is CircuitState.OPEN
    assert breaker.snapshot()["opened_at"] == clock.now
    assert rejected(breaker).retry_after == RECOVERY
    clock.advance(RECOVERY - 1)
    assert breaker.state() is CircuitState.OPEN
    clock.advance(1)
    assert breaker.state() is CircuitState.HALF_OPEN


def test_an_unexpected_exception_in_the_probe_frees_the_probe(breaker, clock):
    trip(breaker)
    clock.advance(RECOVERY)
    fail(breaker, 1, error=ValueError)
    assert breaker.state() is CircuitState.HALF_OPEN
    assert breaker.call(Calls()) == "ok"  # a new probe is admitted
    assert breaker.state() is CircuitState.CLOSED


def test_snapshot(breaker, clock):
    expected = {
        "name": breaker.name,
        "state": "closed",
        "failures": 0,
        "failure_threshold": THRESHOLD,
        "opened_at": None,
        "retry_after": None,
    }
    assert breaker.snapshot() == expected
    fail(breaker, 2)
    assert breaker.snapshot() == {**expected, "failures": 2}
    fail(breaker, THRESHOLD - 2)
    opened_at = clock.now
    clock.advance(10)
    assert breaker.snapshot() == {
        **expected,
        "state": "open",
        "opened_at": opened_at,
        "retry_after": RECOVERY - 10,
    }
    clock.advance(RECOVERY)
    assert breaker.snapshot() == {**expected, "state": "half_open", "opened_at": opened_at}
    breaker.reset()
    assert breaker.snapshot() == expected


# -- registry ------------------------------------------------------------------------


def test_get_breaker_reads_circuit_breakers_from_settings(settings, monkeypatch):
    monkeypatch.setattr(circuit, "_registry", {})
    override_reliability(
        settings,
        CIRCUIT_BREAKERS={"configured": {"failure_threshold": 4, "recovery_timeout": 12.5}},
    )
    configured = get_breaker("configured")
    assert (configured.failure_threshold, configured.recovery_timeout) == (4, 12.5)
    assert get_breaker("configured") is configured

    overridden = get_breaker("other", failure_threshold=2)
    assert (overridden.failure_threshold, overridden.recovery_timeout) == (2, 30.0)
    assert [b.name for b in known_breakers()] == ["configured", "other"]


# -- threads sharing one breaker ---------------------------------------------------------


def start_together(count: int, target) -> list[threading.Thread]:
    """``count`` threads released at once into ``target``; each closes its DB connection."""
    barrier = threading.Barrier(count)

    def run():
        try:
            barrier.wait(timeout=60)
            target()
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


@pytest.mark.django_db(transaction=True)
def test_concurrent_failures_are_all_counted(clean_cache, clock):
    """N calls failing at the same time are N consecutive failures: the circuit opens."""
    threads_count = 12
    breaker = CircuitBreaker(
        "concurrent-failures",
        failure_threshold=threads_count,
        expected_exceptions=(ConnectionError,),
        clock=clock,
    )
    raised = []

    def call():
        try:
            breaker.call(Calls(ConnectionError()))
        except BaseException as error:
            raised.append(error)

    for thread in start_together(threads_count, call):
        thread.join(timeout=60)
    assert [type(error) for error in raised] == [ConnectionError] * threads_count
    assert breaker.state() is CircuitState.OPEN, breaker.snapshot()


@pytest.mark.django_db(transaction=True)
def test_half_open_admits_exactly_one_probe_across_threads(breaker, clock):
    trip(breaker)
    clock.advance(RECOVERY)
    threads_count = 8
    lock = threading.Lock()
    # ``decided``: all but one rejected, or something already went wrong (fail fast).
    decided, release = threading.Event(), threading.Event()
    probes, rejections, results, errors = [], [], [], []

    def note(bucket, item):
        with lock:
            bucket.append(item)
            if len(probes) > 1 or errors or len(rejections) == threads_count - 1:
                decided.set()

    def probe():
        note(probes, threading.get_ident())
        release.wait(timeout=60)
        return "probed"

    def call():
        try:
            results.append(breaker.call(probe))
        except ServiceUnavailableError as error:
            note(rejections, error)
        except BaseException as error:
            note(errors, error)

    threads = start_together(threads_count, call)
    try:
        assert decided.wait(timeout=60), "the threads neither finished nor failed"
        assert not errors
        assert len(probes) == 1, f"{len(probes)} probes admitted at once"
        assert len(rejections) == threads_count - 1
        assert breaker.state() is CircuitState.HALF_OPEN  # the probe is still in flight
    finally:
        release.set()
        for thread in threads:
            thread.join(timeout=60)
    assert results == ["probed"]
    assert {e.details["reason"] for e in rejections} == {"circuit half-open, a probe is in flight"}
    assert breaker.state() is CircuitState.CLOSED
