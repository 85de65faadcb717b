"""The reliability app's settings: one ``RELIABILITY`` dict in the project, with defaults.

As in Django REST Framework's ``api_settings``: a project that sets nothing
gets the defaults below, one that sets some keys overrides those only, and
an unknown key is an error (system check ``reliability.E001``) rather than a
silently ignored typo. Read them as
``reliability_settings.HEALTH_CHECKS``; ``override_settings`` and
pytest-django's ``settings`` fixture are seen at once.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

NAMESPACE = "RELIABILITY"

DEFAULTS: dict[str, Any] = {
    # Named in the /health and /livez bodies.
    "SERVICE_NAME": "service",
    "SERVICE_VERSION": "",
    # Path prefixes whose errors (also Django's own 404/500) are answered with the envelope.
    "ERROR_ENVELOPE_PATHS": ("/",),
    # Path prefix -> request body limit in bytes, above DATA_UPLOAD_MAX_MEMORY_SIZE.
    "BODY_SIZE_LIMITS": {},
    # JSON request bodies (reliability.parsers.BoundedJSONParser): deepest nesting, most values.
    "JSON_MAX_DEPTH": 64,
    "JSON_MAX_VALUES": 100_000,
    # Proxies (addresses or networks) whose X-Forwarded-For is believed.
    "TRUSTED_PROXIES": (),
    # retry_with_backoff's defaults.
    "DEFAULT_MAX_RETRIES": 3,
    "DEFAULT_INITIAL_DELAY": 1.0,
    "DEFAULT_MAX_DELAY": 60.0,
    # write_with_reconnect: attempts of a write that meets a lost database connection.
    "DB_WRITE_ATTEMPTS": 5,
    "DB_RETRY_INITIAL_DELAY": 0.5,
    # reliability.postgresql: skip CONN_HEALTH_CHECKS' SELECT 1 on a connection that served
    # without error this many seconds ago (0: check before every request, as Django does).
    "DB_HEALTH_CHECK_GRACE": 0.5,
    # Circuit breakers: the cache their state is shared in, and per-name options.
    "CIRCUIT_BREAKER_CACHE": "default",
    "CIRCUIT_BREAKERS": {},
    # The cache that holds maintenance locks (cache_lock).
    "LOCK_CACHE": "default",
    # Health checks: name -> dotted path of a function returning a CheckResult.
    "HEALTH_CHECKS": {
        "database": "reliability.health.check_database",
        "circuit_breakers": "reliability.health.check_circuit_breakers",
    },
    # check_celery: unhealthy when no worker heartbeat (reliability.heartbeats) is this recent.
    "HEALTH_CELERY_STALE_SECONDS": 30.0,
    "HEALTH_RETRY_AFTER": 10,
    # /metrics: open to loopback and these networks (CIDRs), or to "Authorization: Bearer" this.
    "METRICS_TOKEN": "",
    "METRICS_ALLOWED_NETWORKS": (),
    # Dotted paths of zero-argument callables returning a prometheus-client collector,
    # called at each scrape (reliability/metrics/collectors.py states the contract).
    "METRICS_COLLECTORS": (),
    # A Celery worker serves /metrics on this port (None: it does not; the web's scrape
    # covers it when both share PROMETHEUS_MULTIPROC_DIR on one host), on this address.
    "METRICS_WORKER_PORT": None,
    "METRICS_WORKER_HOST": "",
}


class ReliabilitySettings:
    def __init__(self, defaults: dict[str, Any]) -> None:
        self._defaults = defaults
        self._cached: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name not in self._defaults:
            raise AttributeError(f"Unknown reliability setting {name!r}")
        if not settings.configured:  # outside Django (a bare RetryConfig): defaults, not cached
            return self._defaults[name]
        if name not in self._cached:
            self._cached[name] = getattr(settings, NAMESPACE, {}).get(name, self._defaults[name])
        return self._cached[name]

    def unknown_keys(self) -> list[str]:
        """Keys of the project's ``RELIABILITY`` that this app does not know: typos."""
        return sorted(set(getattr(settings, NAMESPACE, {})) - set(self._defaults))

    def reload(self) -> None:
        self._cached.clear()


reliability_settings = ReliabilitySettings(DEFAULTS)


@receiver(setting_changed)
def _reload(*, setting: str, **_: Any) -> None:
    if setting == NAMESPACE:
        reliability_settings.reload()
