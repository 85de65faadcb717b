"""Health checks: each answers healthy, unhealthy or disabled, honestly and quickly.

Checks are named in ``RELIABILITY["HEALTH_CHECKS"]`` (name → dotted path) and loaded
when first run, so apps above this one (the sandbox's Kubernetes checks) plug
in without this module knowing them, and nothing is imported or connected at
start-up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db import connections
from django.utils.module_loading import import_string

from .circuit import CircuitState, known_breakers
from .heartbeats import last_heartbeat
from .metrics.definitions import count_health_check
from .settings import reliability_settings

logger = logging.getLogger("reliability.health")

HEALTHY, UNHEALTHY, DISABLED, DEGRADED = "healthy", "unhealthy", "disabled", "degraded"


@dataclass
class CheckResult:
    status: str
    required: bool = True
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    latency_ms: float | None = None

    @property
    def failing(self) -> bool:
        return self.status in (UNHEALTHY, DEGRADED)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "required": self.required}
        if self.reason:
            body["reason"] = self.reason
        if self.latency_ms is not None:
            body["latency_ms"] = round(self.latency_ms, 2)
        body.update(self.details)
        return body


@dataclass
class HealthReport:
    checks: dict[str, CheckResult]

    @property
    def unhealthy_required(self) -> list[str]:
        return [name for name, r in self.checks.items() if r.required and r.status == UNHEALTHY]

    @property
    def status(self) -> str:
        if self.unhealthy_required:
            return UNHEALTHY
        return DEGRADED if any(r.failing for r in self.checks.values()) else HEALTHY

    @property
    def http_status(self) -> int:
        return 503 if self.unhealthy_required else 200


def run_checks(names: list[str] | None = None) -> HealthReport:
    configured: dict[str, str] = reliability_settings.HEALTH_CHECKS
    selected = names or list(configured)
    return HealthReport(
        {name: _run_one(name, import_string(configured[name])) for name in selected}
    )


def _run_one(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    started = time.perf_counter()
    try:
        result = check()
    except Exception as exc:
        # The reason is generic on purpose: /health is public, the log has the rest.
        logger.warning(
            "Health check %s raised",
            name,
            exc_info=True,
            extra={"check": name, "error_type": type(exc).__name__},
        )
        result = CheckResult(UNHEALTHY, reason=f"check failed ({type(exc).__name__})")
    if result.latency_ms is None and result.status != DISABLED:
        result.latency_ms = (time.perf_counter() - started) * 1000
    count_health_check(name, result.status)
    return result


def cached(key: str, ttl: float, check: Callable[[], CheckResult]) -> CheckResult:
    """``check()``'s result, reused for ``ttl`` seconds across processes when the cache works."""
    cache_key = f"health:{key}"
    try:
        hit = cache.get(cache_key)
    except Exception:  # the cache may live in the database that is down
        hit = None
    if hit is not None:
        return CheckResult(**{**hit, "details": {**hit["details"], "cached": True}})
    result = check()
    try:
        cache.set(cache_key, result.__dict__, timeout=ttl)
    except Exception:
        logger.debug("Could not cache the %s health result", key, exc_info=True)
    return result


# -- the checks this app provides ----------------------------------------------


def check_database() -> CheckResult:
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        logger.warning(
            "Database health check failed",
            exc_info=True,
            extra={"check": "database", "error_type": type(exc).__name__},
        )
        connection.close_if_unusable_or_obsolete()
        return CheckResult(
            UNHEALTHY, reason="database unreachable", details={"vendor": connection.vendor}
        )
    return CheckResult(HEALTHY, details={"vendor": connection.vendor})


def check_celery() -> CheckResult:
    """Whether a worker beat recently: read from the shared cache, never asked of the broker."""
    from celery import current_app

    if current_app.conf.task_always_eager:
        return CheckResult(HEALTHY, details={"mode": "eager"})
    heartbeat = last_heartbeat()
    if heartbeat is None:
        return CheckResult(UNHEALTHY, reason="no worker heartbeat recorded")
    age = round(heartbeat.age(), 1)
    details = {"worker": heartbeat.worker, "heartbeat_age_seconds": age}
    stale_after = reliability_settings.HEALTH_CELERY_STALE_SECONDS
    if age > stale_after:
        return CheckResult(
            UNHEALTHY, reason=f"no worker heartbeat for {age:.0f} s", details=details
        )
    return CheckResult(HEALTHY, details=details)


def check_circuit_breakers() -> CheckResult:
    states = {breaker.name: breaker.snapshot() for breaker in known_breakers()}
    not_closed = [name for name, s in states.items() if s["state"] != CircuitState.CLOSED]
    return CheckResult(
        DEGRADED if not_closed else HEALTHY,
        required=False,
        reason=f"open: {', '.join(not_closed)}" if not_closed else None,
        details={
            "breakers": {
                name: {k: s[k] for k in ("state", "failures", "retry_after")}
                for name, s in states.items()
            }
        },
    )
