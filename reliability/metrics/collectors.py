"""Values read when Prometheus scrapes, from the shared cache or the project's own collectors.

A state shared by every process (a circuit breaker's, the newest worker heartbeat)
is read once per scrape where it lives, instead of each process keeping a gauge
that would be stale in all but the last one to change it.

``METRICS_COLLECTORS`` names further collectors by dotted path. Contract: the path
is a zero-argument callable (a class or a factory) returning a prometheus-client
collector — an object whose ``collect()`` yields metric families. It is called
once per process, at the first scrape that process answers (again if it raised);
the collector's ``collect()`` runs at every scrape. It may read the database or
the cache, and should be quick. A collector that raises is logged and left out
of that scrape; the others are still served.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from django.utils.module_loading import import_string
from prometheus_client.core import GaugeMetricFamily, Metric

from ..circuit import CircuitState, known_breakers
from ..heartbeats import last_heartbeat
from ..settings import reliability_settings

logger = logging.getLogger("reliability.metrics")


class CircuitBreakerCollector:
    """``vexxy_circuit_breaker_open``: 1 open or half-open, 0 closed, per breaker."""

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "vexxy_circuit_breaker_open",
            "1 while the circuit breaker is open or half-open, 0 when closed.",
            labels=["breaker"],
        )
        for breaker in known_breakers():
            state = breaker.snapshot()["state"]
            family.add_metric([breaker.name], 0.0 if state == CircuitState.CLOSED else 1.0)
        yield family


class HeartbeatCollector:
    """``vexxy_celery_heartbeat_age_seconds``; no sample when no worker ever beat."""

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "vexxy_celery_heartbeat_age_seconds",
            "Age of the newest Celery worker heartbeat in the shared cache.",
        )
        heartbeat = last_heartbeat()
        if heartbeat is not None:
            family.add_metric([], heartbeat.age())
        yield family


BUILT_IN: tuple[Callable[[], Any], ...] = (CircuitBreakerCollector, HeartbeatCollector)


class SafeCollector:
    """Runs one collector, logging and skipping it when it fails (cache or database down)."""

    def __init__(self, name: str, factory: Callable[[], Any]) -> None:
        self.name, self.factory = name, factory
        self.instance: Any = None

    def collect(self) -> Iterator[Metric]:
        try:
            if self.instance is None:
                self.instance = self.factory()
            families = list(self.instance.collect())
        except Exception as exc:
            logger.warning(
                "Metrics collector %s failed",
                self.name,
                exc_info=True,
                extra={"collector": self.name, "error_type": type(exc).__name__},
            )
            return iter(())
        return iter(families)


def scrape_collectors() -> tuple[SafeCollector, ...]:
    """The built-in collectors and those of ``METRICS_COLLECTORS``, each failing alone."""
    return _collectors(tuple(reliability_settings.METRICS_COLLECTORS))


@lru_cache(maxsize=8)  # one set per process (and per value of the setting, for tests)
def _collectors(paths: tuple[str, ...]) -> tuple[SafeCollector, ...]:
    factories = [(f"{f.__module__}.{f.__qualname__}", f) for f in BUILT_IN]
    factories += [(path, import_string(path)) for path in paths]
    return tuple(SafeCollector(name, factory) for name, factory in factories)
