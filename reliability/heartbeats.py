"""Celery workers' heartbeats, kept in the shared cache for the health check to read.

A health request must never wait on the broker: asking workers for a ping takes the
full timeout when none answers, and blocks the request meanwhile. Every Celery
worker already sends a heartbeat event every two seconds from its consumer — also
while all its pool slots are busy with long jobs — and stops when it loses the
broker. On each one, the worker records its name and the time here; ``/health``
reads the newest record and reports its age. A worker started with
``--without-heartbeat`` records one heartbeat, when it is ready, and no more.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

logger = logging.getLogger("reliability.heartbeats")

HEARTBEAT_KEY = "reliability:celery-heartbeat"
# Kept well past any sensible staleness limit, so that "stale" and "never seen" differ.
RECORD_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Heartbeat:
    worker: str
    at: float

    def age(self, now: float | None = None) -> float:
        return max((time.time() if now is None else now) - self.at, 0.0)


def record_heartbeat(worker: str, at: float | None = None) -> None:
    """The newest of any worker (for /health) and this worker's own (for its container)."""
    record = {"worker": worker, "at": time.time() if at is None else at}
    try:
        cache.set_many({HEARTBEAT_KEY: record, _key_of(worker): record}, RECORD_SECONDS)
    except Exception:  # a worker must not stop beating because the cache hiccuped
        logger.warning("Could not record the worker heartbeat", exc_info=True)


def last_heartbeat(worker: str | None = None) -> Heartbeat | None:
    """The newest heartbeat of ``worker``, or of any; ``None`` when none was recorded."""
    record = cache.get(HEARTBEAT_KEY if worker is None else _key_of(worker))
    return None if record is None else Heartbeat(record["worker"], record["at"])


def _key_of(worker: str) -> str:
    return f"{HEARTBEAT_KEY}:{worker}"


def connect_receivers() -> None:
    """Record heartbeats in this process when it is a Celery worker (no-op elsewhere)."""
    try:
        from celery.signals import heartbeat_sent, worker_ready
    except ImportError:  # a project without Celery has no workers to watch
        return
    heartbeat_sent.connect(_on_heartbeat, weak=False, dispatch_uid="reliability.heartbeat")
    worker_ready.connect(_on_ready, weak=False, dispatch_uid="reliability.worker_ready")


def _on_heartbeat(sender: Any, **_: Any) -> None:
    record_heartbeat(sender.eventer.hostname)


def _on_ready(sender: Any, **_: Any) -> None:
    record_heartbeat(sender.hostname)
