"""Circuit breakers whose state every web and worker process shares.

Libraries such as pybreaker keep state per process (or in Redis only); this
service needs it in whatever Django cache is configured — the database cache
on the embedded default, Redis in production — so that a dependency declared
down by a worker is also down for the web process and ``/health``. That is
what this module adds: the state machine below, stored in three cache keys.

- ``failures``: consecutive failures while closed (``cache.incr``);
- ``opened_at``: when the circuit last opened (absent = closed);
- ``probe``: held by the one caller admitted while half-open (``cache.add``
  is atomic on every backend, so exactly one process gets it).

Metrics: each transition is counted where it happens
(``vexxy_circuit_breaker_transitions_total``: "open", "half_open" when a probe is
admitted, "closed" when it succeeds); whether a breaker is open is read from the
cache at scrape time (:mod:`reliability.metrics.collectors`).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache import caches
from django.utils.module_loading import import_string

from .exceptions import ServiceUnavailableError
from .metrics.definitions import count_transition
from .settings import reliability_settings

logger = logging.getLogger("reliability.circuit")

T = TypeVar("T")


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        recovery_timeout: float = 30.0,
        expected_exceptions: tuple[type[BaseException], ...] = (Exception,),
        *,
        cache_alias: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.name = name
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self.expected_exceptions = expected_exceptions
        self.cache_alias = cache_alias or reliability_settings.CIRCUIT_BREAKER_CACHE
        self.clock = clock
        prefix = f"circuit:{name}:"
        self._failures_key = prefix + "failures"
        self._opened_key = prefix + "opened_at"
        self._probe_key = prefix + "probe"

    @property
    def cache(self):
        return caches[self.cache_alias]

    # -- state ----------------------------------------------------------------

    def state(self) -> CircuitState:
        return self._state_since(self.cache.get(self._opened_key))

    def _state_since(self, opened_at: float | None) -> CircuitState:
        if opened_at is None:
            return CircuitState.CLOSED
        if self.clock() - opened_at < self.recovery_timeout:
            return CircuitState.OPEN
        return CircuitState.HALF_OPEN

    def snapshot(self) -> dict[str, Any]:
        """What ``/health`` and metrics show (one read of the shared cache)."""
        values = self.cache.get_many([self._opened_key, self._failures_key])
        opened_at = values.get(self._opened_key)
        state = self._state_since(opened_at)
        return {
            "name": self.name,
            "state": state.value,
            "failures": int(values.get(self._failures_key) or 0),
            "failure_threshold": self.failure_threshold,
            "opened_at": opened_at,
            "retry_after": self._retry_after(opened_at) if state is CircuitState.OPEN else None,
        }

    def reset(self) -> None:
        self.cache.delete_many([self._failures_key, self._opened_key, self._probe_key])

    # -- calls ----------------------------------------------------------------

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        state = self.state()
        if state is CircuitState.OPEN:
            raise self._rejection("open", self._retry_after(self.cache.get(self._opened_key)))
        probe_token = None
        if state is CircuitState.HALF_OPEN:
            probe_token = self._take_probe()
            if probe_token is None:
                raise self._rejection("half-open, a probe is in flight", 1.0)
        try:
            result = fn(*args, **kwargs)
        except self.expected_exceptions:
            self._on_failure(probing=probe_token is not None)
            raise
        except BaseException:
            if probe_token is not None:
                self.cache.delete(self._probe_key)
            raise
        self._on_success(probing=probe_token is not None)
        return result

    # -- transitions ----------------------------------------------------------

    def _take_probe(self) -> str | None:
        token = uuid.uuid4().hex
        # The claim expires: a probe lost with its process must not wedge the circuit.
        timeout = max(1, int(self.recovery_timeout))
        if not self.cache.add(self._probe_key, token, timeout=timeout):
            return None
        count_transition(self.name, CircuitState.HALF_OPEN.value)
        return token

    def _on_success(self, *, probing: bool) -> None:
        if probing:
            self.reset()
            count_transition(self.name, CircuitState.CLOSED.value)
            logger.info(
                "Circuit %s closed: the probe succeeded",
                self.name,
                extra={"circuit": self.name, "circuit_state": "closed"},
            )
        elif self.cache.get(self._failures_key):
            self.cache.delete(self._failures_key)

    def _on_failure(self, *, probing: bool) -> None:
        if probing:
            self._open()
            self.cache.delete(self._probe_key)
            logger.warning(
                "Circuit %s re-opened: the probe failed",
                self.name,
                extra={"circuit": self.name, "circuit_state": "open"},
            )
            return
        failures = self._count_failure()
        if failures >= self.failure_threshold and self.state() is CircuitState.CLOSED:
            self._open()
            logger.error(
                "Circuit %s opened after %d consecutive failures",
                self.name,
                failures,
                extra={"circuit": self.name, "circuit_state": "open", "failures": failures},
            )

    def _count_failure(self) -> int:
        try:
            return self.cache.incr(self._failures_key)
        except ValueError:  # no counter yet; add() so that a racing process's 1 is not overwritten
            if self.cache.add(self._failures_key, 1, timeout=None):
                return 1
            return self.cache.incr(self._failures_key)

    def _open(self) -> None:
        self.cache.set(self._opened_key, self.clock(), timeout=None)
        self.cache.delete(self._failures_key)
        count_transition(self.name, CircuitState.OPEN.value)

    def _retry_after(self, opened_at: float | None) -> float:
        if opened_at is None:
            return 0.0
        return max(0.0, self.recovery_timeout - (self.clock() - opened_at))

    def _rejection(self, why: str, retry_after: float) -> ServiceUnavailableError:
        return ServiceUnavailableError(
            self.name,
            f"circuit {why}",
            f"{self.name} is unavailable: recent calls failed, retry later.",
            retry_after=max(1.0, retry_after),
        )


_registry: dict[str, CircuitBreaker] = {}
_registry_lock = threading.Lock()


def get_breaker(name: str, **overrides: Any) -> CircuitBreaker:
    """The process-wide breaker called ``name``, configured from ``CIRCUIT_BREAKERS``.

    The instance is per process; its state is in the shared cache.
    """
    with _registry_lock:
        breaker = _registry.get(name)
        if breaker is None:
            options = {**reliability_settings.CIRCUIT_BREAKERS.get(name, {}), **overrides}
            expected = options.get("expected_exceptions")
            if isinstance(expected, str):  # a dotted path in settings, resolved on first use
                imported = import_string(expected)
                options["expected_exceptions"] = (
                    imported if isinstance(imported, tuple) else (imported,)
                )
            breaker = _registry[name] = CircuitBreaker(name, **options)
        return breaker


def forget_breakers() -> None:
    """Drop this process's breaker instances (their shared state stays in the cache).

    For tests and for settings that changed at run time.
    """
    with _registry_lock:
        _registry.clear()


def known_breakers() -> list[CircuitBreaker]:
    """Every breaker configured in settings or created in this process."""
    for name in reliability_settings.CIRCUIT_BREAKERS:
        get_breaker(name)
    return sorted(_registry.values(), key=lambda breaker: breaker.name)
