"""Whether the sandbox can take a job right now.

A submission the service cannot run is refused with 503 naming the missing
piece, never accepted and left to fail later. The checks reuse the health
checks' cached results, so a burst of submissions costs one probe.
"""

from __future__ import annotations

from django.conf import settings

from analysis.sandbox.checks import check_kubernetes, check_kubescape
from reliability.circuit import CircuitState, get_breaker
from reliability.exceptions import ServiceUnavailableError
from reliability.health import UNHEALTHY

KUBERNETES_BREAKER = "kubernetes"


def ensure_sandbox_available() -> None:
    if not settings.SANDBOX_ENABLED:
        raise ServiceUnavailableError(
            "sandbox",
            "no Kubernetes cluster is configured (SANDBOX_ENABLED is off)",
            "Analyses need a Kubernetes cluster with Kubescape; none is configured. "
            "Results of an existing Kubescape scan can still be imported.",
            retry_after=settings.SANDBOX_UNAVAILABLE_RETRY_AFTER,
        )
    breaker = get_breaker(KUBERNETES_BREAKER)
    snapshot = breaker.snapshot()
    if snapshot["state"] == CircuitState.OPEN:
        raise ServiceUnavailableError(
            "kubernetes",
            "circuit open after repeated failures",
            retry_after=snapshot["retry_after"] or 1,
        )
    for service, check in (("kubernetes", check_kubernetes), ("kubescape", check_kubescape)):
        result = check()
        if result.status == UNHEALTHY:
            raise ServiceUnavailableError(
                service,
                result.reason or "unhealthy",
                retry_after=settings.HEALTH_KUBERNETES_CACHE_SECONDS,
            )
