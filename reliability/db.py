"""Database writes that survive a database restart.

``CONN_HEALTH_CHECKS`` replaces a dead connection at the start of a request or
task (``reliability.postgresql``: unless it served within the grace); this covers
a restart in the middle of one, or inside the grace: a write that meets a lost
connection is retried on a fresh one, with backoff. Inside a transaction a
retry is impossible (the transaction is gone with the connection), so there
the caller retries the whole block through the same function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, connections

from .retry import RetryConfig, retry_with_backoff
from .settings import reliability_settings

T = TypeVar("T")
DISCONNECTS = (OperationalError, InterfaceError)


def write_with_reconnect(
    fn: Callable[..., T], *args: Any, sleep: Callable[[float], None] | None = None, **kwargs: Any
) -> T:
    if any(c.in_atomic_block for c in connections.all(initialized_only=True)):
        return fn(*args, **kwargs)

    def once() -> T:
        try:
            return fn(*args, **kwargs)
        except DISCONNECTS:
            for connection in connections.all(initialized_only=True):
                connection.close()  # the next attempt connects afresh
            raise

    policy = RetryConfig(
        max_attempts=reliability_settings.DB_WRITE_ATTEMPTS,
        initial_delay=reliability_settings.DB_RETRY_INITIAL_DELAY,
        max_delay=10.0,
    )
    return retry_with_backoff(DISCONNECTS, policy, sleep=sleep)(once)()
