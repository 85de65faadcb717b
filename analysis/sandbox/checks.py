"""Health checks for the sandbox's dependencies: the Kubernetes API and Kubescape.

Both are required only when the sandbox is enabled; otherwise they are
reported as disabled, which is not a failure.
"""

from __future__ import annotations

import logging

from django.conf import settings
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from analysis.sandbox.client import api_client
from reliability.health import DISABLED, HEALTHY, UNHEALTHY, CheckResult, cached

logger = logging.getLogger(__name__)


def check_kubernetes() -> CheckResult:
    if not settings.SANDBOX_ENABLED:
        return _disabled()
    return cached("kubernetes", settings.HEALTH_KUBERNETES_CACHE_SECONDS, _probe_kubernetes)


def check_kubescape() -> CheckResult:
    if not settings.SANDBOX_ENABLED:
        return _disabled()
    return cached("kubescape", settings.HEALTH_KUBERNETES_CACHE_SECONDS, _probe_kubescape)


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
