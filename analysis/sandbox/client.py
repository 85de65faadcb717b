"""The Kubernetes API client: the only place that talks to the cluster.

Configuration is loaded on first use, never at import or start-up, so the
service boots without a cluster. urllib3's own retries are off: every call
goes through :func:`call`, which bounds it with a timeout, retries transient
failures (429, 5xx, connection errors) with backoff honouring ``Retry-After``,
counts them on the shared ``kubernetes`` circuit breaker, and maps what is
left to ``KubernetesError`` / ``ServiceUnavailableError``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from django.conf import settings
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from analysis import metrics
from analysis.exceptions import KubernetesError
from reliability.circuit import get_breaker
from reliability.exceptions import ServiceUnavailableError
from reliability.retry import RetryConfig, parse_retry_after, retry_with_backoff

logger = logging.getLogger(__name__)

BREAKER = "kubernetes"
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
T = TypeVar("T")

_lock = threading.Lock()
_api_client: client.ApiClient | None = None


class TransientKubernetesError(KubernetesError):
    """A failure worth another attempt: 408, 429 or 5xx."""


class KubernetesUnreachableError(ServiceUnavailableError):
    """No answer at all: connection refused, reset or timed out."""

    def __init__(self, operation: str) -> None:
        super().__init__("kubernetes", f"API unreachable during {operation}", retry_after=5)


TRANSIENT = (TransientKubernetesError, KubernetesUnreachableError)


def load_configuration() -> client.Configuration:
    configuration = client.Configuration()
    if settings.K8S_IN_CLUSTER:
        config.load_incluster_config(client_configuration=configuration)
    else:
        # persist_config=False: refreshed tokens are never written back to the operator's file.
        config.load_kube_config(
            config_file=_kubeconfig_path(),
            client_configuration=configuration,
            persist_config=False,
        )
    configuration.retries = urllib3.Retry(
        total=0, redirect=0, respect_retry_after_header=False, raise_on_status=False
    )
    return configuration


class CountedApiClient(client.ApiClient):
    """The official client, counting each HTTP request it sends (``analysis.metrics``)."""

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        status: int | None = None
        try:
            response = super().call_api(method, url, *args, **kwargs)
            status = getattr(response, "status", None)
            return response
        except ApiException as error:  # the REST layer's own, e.g. an SSL failure: status 0
            status = error.status or None
            raise
        finally:
            metrics.kubernetes_request(method, url, status, time.perf_counter() - started)


def api_client() -> client.ApiClient:
    """The process-wide client, built on first use."""
    global _api_client
    with _lock:
        if _api_client is None:
            _api_client = CountedApiClient(load_configuration())
        return _api_client


def reset_client() -> None:
    """Forget the client, e.g. after the kubeconfig changed."""
    global _api_client
    with _lock:
        if _api_client is not None:
            _api_client.close()
        _api_client = None


def _kubeconfig_path() -> str:
    candidates = [p for p in settings.KUBECONFIG.split(os.pathsep) if p]
    if not candidates:
        raise ConfigException("KUBECONFIG is empty")
    existing = [p for p in candidates if Path(p).expanduser().is_file()]
    return str(Path((existing or candidates)[0]).expanduser())


def get_json(
    path: str, query: list[tuple[str, str]] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """A raw GET, for what the generated API cannot ask (``?resourceVersion=metadata``).

    Use through :func:`call`, like any other method.
    """
    api = api_client()
    method, url, headers, body, post = api.param_serialize(
        "GET",
        path,
        query_params=query or [],
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = api.call_api(
        method, url, headers, body, post, _request_timeout=kwargs.get("_request_timeout")
    )
    response.read()
    if not 200 <= response.status < 300:
        raise ApiException(http_resp=response)
    return json.loads(response.data)


def call(
    operation: str,
    method: Callable[..., T],
    *args: Any,
    resource: str | None = None,
    missing_ok: bool = False,
    retry_sleep: Callable[[float], None] | None = None,
    **kwargs: Any,
) -> T | None:
    """Run one API ``method`` with the service's timeout, retry and circuit policy.

    ``missing_ok``: a 404 returns None (a delete of something already gone).
    ``retry_sleep``: how to wait between attempts (the pipeline passes its clock's).
    """
    kwargs.setdefault("_request_timeout", settings.K8S_REQUEST_TIMEOUT)
    breaker = get_breaker(BREAKER)

    def once() -> T | None:
        return breaker.call(_mapped, operation, method, args, kwargs, resource, missing_ok)

    policy = RetryConfig(max_attempts=settings.K8S_MAX_ATTEMPTS)
    return retry_with_backoff(TRANSIENT, policy, sleep=retry_sleep)(once)()


def _mapped(
    operation: str,
    method: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    resource: str | None,
    missing_ok: bool,
) -> T | None:
    try:
        return method(*args, **kwargs)
    except ApiException as error:
        if error.status == 404 and missing_ok:
            return None
        raise _from_api_exception(operation, error, resource) from error
    except ConfigException as error:
        raise ServiceUnavailableError(
            "kubernetes", "no usable Kubernetes configuration", retry_after=60
        ) from error
    except (urllib3.exceptions.HTTPError, OSError) as error:
        logger.warning(
            "Kubernetes API unreachable during %s",
            operation,
            extra={"operation": operation, "error_type": type(error).__name__},
        )
        raise KubernetesUnreachableError(operation) from error


def _from_api_exception(operation: str, error: ApiException, resource: str | None):
    status = error.status or None
    kind = TransientKubernetesError if status in TRANSIENT_STATUSES else KubernetesError
    mapped = kind(
        operation,
        f"Kubernetes {operation} failed with HTTP {status}",
        status_code=status,
        resource=resource,
    )
    headers = getattr(error, "headers", None) or {}
    mapped.retry_after = parse_retry_after(
        next((v for k, v in dict(headers).items() if k.lower() == "retry-after"), None)
    )
    return mapped
