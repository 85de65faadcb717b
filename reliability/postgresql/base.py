"""Django's PostgreSQL backend, without a health check for a connection that has just served.

``CONN_HEALTH_CHECKS`` sends ``SELECT 1`` before the first query of every request that reuses a
persistent connection: one more round trip to the server per request, whatever the load. This
backend skips that check when the connection's last query in an earlier request, with no
database error in that request, was less than ``DB_HEALTH_CHECK_GRACE`` seconds ago (the
``RELIABILITY`` setting; 0 checks every time, as Django does). A server restart between that
query and the next request's is the only case the check would have caught; it costs at most one
failed request per connection, since Django closes a connection that raised when the request
ends. (Celery's Django fixup closes a worker's connections around every task: tasks always
start on a new connection.)

Use it as ``ENGINE = "reliability.postgresql"``; everything else is Django's backend.
"""

from __future__ import annotations

import time

from django.db.backends.postgresql import base

from ..settings import reliability_settings


class DatabaseWrapper(base.DatabaseWrapper):
    used_at: float | None = None  # monotonic time of the last cursor since the request began
    served_at: float | None = None  # used_at of the last request that ended without an error

    def connect(self) -> None:
        self.used_at = self.served_at = None
        super().connect()

    def close_if_health_check_failed(self) -> None:
        # Django calls this before every cursor: the last call is the connection's last use.
        if self.connection is not None and not self.health_check_done and self._served_recently():
            self.health_check_done = True
        else:
            super().close_if_health_check_failed()
        self.used_at = time.monotonic()

    def close_if_unusable_or_obsolete(self) -> None:
        # Called as a request starts and as it ends.
        served = self.used_at is not None and not self.errors_occurred
        used_at, self.used_at = self.used_at, None
        super().close_if_unusable_or_obsolete()
        if served and self.connection is not None:
            self.served_at = used_at

    def _served_recently(self) -> bool:
        grace = reliability_settings.DB_HEALTH_CHECK_GRACE
        return (
            self.served_at is not None and grace > 0 and time.monotonic() - self.served_at < grace
        )
