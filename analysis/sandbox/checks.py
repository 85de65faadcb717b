"""Health checks for the sandbox's dependencies: the Kubernetes API and Kubescape.

Both are required only when the sandbox is enabled; otherwise they are
reported as disabled, which is not a failure.

A process with ``SANDBOX_HEALTH_FROM_WORKERS`` (web pods in Kubernetes, which have no
service-account token) does not probe the cluster: it reads what a Celery worker last
probed. Workers probe on their heartbeat, in a thread of their own, at most every
``HEALTH_KUBERNETES_CACHE_SECONDS``, and publish both results in the shared cache.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from analysis.sandbox.client import api_client
from reliability.health import DISABLED, HEALTHY, UNHEALTHY, CheckResult, cached
from reliability.settings import reliability_settings

logger = logging.getLogger(__name__)

REPORT_KEY = "analysis:cluster-health-from-workers"
REPORT_RECORD_SECONDS = 24 * 3600  # kept past staleness, so that "stale" and "never" differ


def check_kubernetes() -> CheckResult:
    if not settings.SANDBOX_ENABLED:
        return _disabled()
    if settings.SANDBOX_HEALTH_FROM_WORKERS:
        return _reported("kubernetes")
    return _kubernetes()


def check_kubescape() -> CheckResult:
    if not settings.SANDBOX_ENABLED:
        return _disabled()
    if settings.SANDBOX_HEALTH_FROM_WORKERS:
        return _reported("kubescape")
    return _kubescape()


def _kubernetes() -> CheckResult:
    return cached("kubernetes", settings.HEALTH_KUBERNETES_CACHE_SECONDS, _probe_kubernetes)


def _kubescape() -> CheckResult:
    return cached("kubescape", settings.HEALTH_KUBERNETES_CACHE_SECONDS, _probe_kubescape)


# -- the workers' reports ----------------------------------------------------------------------


def publish_cluster_health(worker: str, at: float | None = None) -> None:
    """Probe (or reuse a result younger than the cache period) and publish both results."""
    results = {"kubernetes": _kubernetes(), "kubescape": _kubescape()}
    record = {
        "worker": worker,
        "at": time.time() if at is None else at,
        "results": {name: _plain(result) for name, result in results.items()},
    }
    cache.set(REPORT_KEY, record, REPORT_RECORD_SECONDS)


def _plain(result: CheckResult) -> dict[str, Any]:
    details = {k: v for k, v in result.details.items() if k != "cached"}
    return {"status": result.status, "reason": result.reason, "details": details}


def report_stale_after() -> float:
    """As long as a silent worker is tolerated, and never below three probe periods."""
    return max(
        reliability_settings.HEALTH_CELERY_STALE_SECONDS,
        3 * settings.HEALTH_KUBERNETES_CACHE_SECONDS,
    )


def _reported(name: str) -> CheckResult:
    record = cache.get(REPORT_KEY)
    if record is None:
        return CheckResult(UNHEALTHY, reason="no worker has reported the cluster's health yet")
    age = round(max(time.time() - record["at"], 0.0), 1)
    origin = {"reported_by": record["worker"], "report_age_seconds": age}
    if age > report_stale_after():
        return CheckResult(
            UNHEALTHY,
            reason=f"no worker has reported the cluster's health for {age:.0f} s",
            details=origin,
        )
    result = record["results"][name]
    return CheckResult(
        result["status"], reason=result["reason"], details={**result["details"], **origin}
    )


class _Reporter:
    """On a worker's heartbeats: one probe at a time, off the consumer's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0.0

    def on_heartbeat(self, sender: Any, **_: Any) -> None:
        if not settings.SANDBOX_ENABLED:
            return
        now = time.monotonic()
        if now - self._last < settings.HEALTH_KUBERNETES_CACHE_SECONDS:
            return
        if not self._lock.acquire(blocking=False):
            return  # the previous probe still runs
        self._last = now
        worker = sender.eventer.hostname
        threading.Thread(
            target=self._publish, args=(worker,), name="cluster-health", daemon=True
        ).start()

    def _publish(self, worker: str) -> None:
        try:
            publish_cluster_health(worker)
        except Exception:  # a cache or probe hiccup: the next heartbeat tries again
            logger.warning("Could not publish the cluster's health", exc_info=True)
        finally:
            self._lock.release()


def connect_worker_reports() -> None:
    """In a Celery worker: publish the cluster's health on heartbeats (no-op elsewhere)."""
    from celery.signals import heartbeat_sent

    heartbeat_sent.connect(
        _Reporter().on_heartbeat, weak=False, dispatch_uid="analysis.cluster_health"
    )


def _disabled() -> CheckResult:
    return CheckResult(DISABLED, required=False, reason="sandbox disabled (SANDBOX_ENABLED)")


def _probe_kubernetes() -> CheckResult:
    timeout = settings.HEALTH_KUBERNETES_TIMEOUT
    try:
        client.VersionApi(api_client()).get_code(_request_timeout=timeout)
    except Exception as exc:
        return _failure(exc)
    return CheckResult(HEALTHY)


def _probe_kubescape() -> CheckResult:
    name = settings.KUBESCAPE_APISERVICE
    timeout = settings.HEALTH_KUBERNETES_TIMEOUT
    try:
        service = client.ApiregistrationV1Api(api_client()).read_api_service(
            name, _request_timeout=timeout
        )
    except Exception as exc:
        return _failure(
            exc,
            not_found=f"APIService {name} not found: install the Kubescape operator "
            "with its storage component",
        )
    conditions = (service.status.conditions if service.status else None) or []
    if not any(c.type == "Available" and c.status == "True" for c in conditions):
        return CheckResult(UNHEALTHY, reason=f"APIService {name} is not Available")
    return CheckResult(HEALTHY, details={"apiservice": name})


def _failure(exc: Exception, not_found: str | None = None) -> CheckResult:
    if isinstance(exc, ConfigException):
        return CheckResult(UNHEALTHY, reason="no usable Kubernetes configuration")
    if isinstance(exc, ApiException):
        if exc.status == 404 and not_found:
            return CheckResult(UNHEALTHY, reason=not_found)
        return CheckResult(UNHEALTHY, reason=f"Kubernetes API answered {exc.status}")
    logger.warning(
        "Kubernetes API unreachable", exc_info=True, extra={"error_type": type(exc).__name__}
    )
    return CheckResult(UNHEALTHY, reason="Kubernetes API unreachable")
