"""Rate limits that hold under concurrency: one atomic counter per client and window.

DRF's ``SimpleRateThrottle`` keeps each client's request times in one cache entry
that every request reads, appends to and writes back. Concurrent requests read the
same list and the last write wins, so under load several times the limit gets
through. Here a request is one atomic increment (``reliability.cache.
incr_with_expiry``: a single Lua call on Redis) of a counter for the current window;
windows are fixed and aligned to the clock (a ``/minute`` window starts at :00), so
a client gets exactly the rate per window and ``Retry-After`` is the time left in it.
"""

from __future__ import annotations

import math

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from .cache import incr_with_expiry


class FixedWindowRateThrottle(SimpleRateThrottle):
    """``SimpleRateThrottle``'s rates and keys, counted atomically per fixed window.

    Subclasses set ``scope`` and ``get_cache_key`` as for DRF's throttles.
    """

    def allow_request(self, request: Request, view: object) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = math.floor(self.now / self.duration)
        self.window_ends = (window + 1) * self.duration
        count = incr_with_expiry(self.cache, f"{self.key}:{window}", self.duration + 1)
        return count <= self.num_requests

    def wait(self) -> float:
        return max(self.window_ends - self.now, 0.0)
