"""The metrics this app records (names fixed by the service's metric list) and their helpers.

Each helper caches the labelled child per label set, so the per-request cost is a
dictionary hit and one increment (in multiprocess mode, a write to an mmap).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from prometheus_client import Counter, Histogram, values

from .multiproc import multiproc_dir

logger = logging.getLogger("reliability.metrics")

if multiproc_dir() is not None and values.ValueClass is values.MutexValue:
    logger.warning(
        "prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set: "
        "this process's metrics are not shared with the scrape"
    )

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"

HTTP_REQUESTS = Counter(
    "vexxy_http_requests_total",
    "HTTP requests answered, by route template, method and status class.",
    ["route", "method", "status_class"],
)
HTTP_DURATION = Histogram(
    "vexxy_http_request_duration_seconds",
    "Time from the outermost middleware receiving a request to its response.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
HTTP_ERRORS = Counter(
    "vexxy_http_errors_total",
    "Error envelopes rendered, by error code and status class.",
    ["error_code", "status_class"],
)
RETRIES = Counter(
    "vexxy_retries_total",
    "Retry decisions: retried (another attempt follows), recovered, exhausted.",
    ["operation", "outcome"],
)
BREAKER_TRANSITIONS = Counter(
    "vexxy_circuit_breaker_transitions_total",
    "Circuit breaker state changes, by breaker and the state entered.",
    ["breaker", "state"],
)
HEALTH_CHECKS = Counter(
    "vexxy_health_checks_total",
    "Health checks run, by check and result.",
    ["check", "status"],
)


def status_class(status: int) -> str:
    return f"{status // 100}xx"


@lru_cache(maxsize=4096)
def _child(metric: Any, *labels: str) -> Any:
    return metric.labels(*labels)


def observe_request(route: str | None, method: str, status: int, seconds: float) -> None:
    route = route or UNMATCHED
    method = method if method in HTTP_METHODS else "OTHER"
    _child(HTTP_REQUESTS, route, method, status_class(status)).inc()
    _child(HTTP_DURATION, route, method).observe(seconds)


def count_error(error_code: str, status: int) -> None:
    _child(HTTP_ERRORS, error_code, status_class(status)).inc()


def count_retry(operation: str, outcome: str) -> None:
    _child(RETRIES, operation, outcome).inc()


def count_transition(breaker: str, state: str) -> None:
    _child(BREAKER_TRANSITIONS, breaker, state).inc()


def count_health_check(check: str, status: str) -> None:
    _child(HEALTH_CHECKS, check, status).inc()
