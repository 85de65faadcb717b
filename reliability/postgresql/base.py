"""Django's PostgreSQL backend, without a health check for a connection that has just served.

``CONN_HEALTH_CHECKS`` sends ``SELECT 1`` before the first query of every request or task that
reuses a persistent connection: one more round trip to the server per request, whatever the
load. This backend skips that check when the same connection finished a request or task without
a database error less than ``DB_HEALTH_CHECK_GRACE`` seconds ago (the ``RELIABILITY`` setting;
0 checks every time, as Django does). A server restart that completes inside that window is the
only case the check would have saved, and it costs at most one failed request per connection:
Django closes a connection that raised at the end of the request.

Use it as ``ENGINE = "reliability.postgresql"``; everything else is Django's backend.
"""

from __future__ import annotations

import time

from django.db.backends.postgresql import base

from ..settings import reliability_settings


class DatabaseWrapper(base.DatabaseWrapper):
    served_at: float | None = None  # monotonic time the connection last served without error

    def connect(self) -> None:
        self.served_at = None
        super().connect()

    def close_if_health_check_failed(self) -> None:
        if not self.health_check_done and self._served_recently():
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def close_if_unusable_or_obsolete(self) -> None:
        # Called as a request or task starts and ends. health_check_done says that the
        # connection was used since the last call, errors_occurred that a query failed.
        served = self.connection is not None and self.health_check_done
        served = served and not self.errors_occurred
        super().close_if_unusable_or_obsolete()
        if served and self.connection is not None:
            self.served_at = time.monotonic()

    def _served_recently(self) -> bool:
        grace = reliability_settings.DB_HEALTH_CHECK_GRACE
        return (
            self.served_at is not None and grace > 0 and time.monotonic() - self.served_at < grace
        )
