"""Rate limits that hold under concurrency: one atomic counter per client and window.

DRF's ``SimpleRateThrottle`` keeps each client's request times in one cache entry
that every request reads, appends to and writes back. Concurrent requests read the
same list and the last write wins, so under load several times the limit gets
through. Here a request is one atomic increment (``reliability.cache.
incr_with_expiry``: a single Lua call on Redis) of a counter for the current window;
windows are fixed and aligned to the clock (a ``/minute`` window starts at :00), so
a client gets exactly the rate per window and ``Retry-After`` is the time left in it.

Authentication may count a request before the throttles run, in the round trip
that reads its credentials (``count_early``); the throttle then uses that count
instead of counting again. Credentials that turn out to be invalid must not leave
a counter behind (``discard_early_count``): a client inventing keys would fill the
cache with them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from .cache import incr_with_expiry

# (counter key, ttl) -> the counter's value after this request's increment
Increment = Callable[[str, int], int]
EARLY_COUNTS = "_reliability_early_counts"  # attribute of the HttpRequest


class Count(NamedTuple):
    value: int  # this request's number in its window
    counter: str  # the window's key in the cache
    counted_at: float
    window_ends: float


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
        early = getattr(request._request, EARLY_COUNTS, {}).pop(self.key, None)
        count = early or self._count(self.key, self._increment)
        self.now, self.window_ends = count.counted_at, count.window_ends
        return count.value <= self.num_requests

    def wait(self) -> float:
        return max(self.window_ends - self.now, 0.0)

    def count_early(self, request: HttpRequest, key: str, increment: Increment) -> None:
        """Count ``request`` against ``key`` now, through ``increment``; ``allow_request``
        for the same key then decides on this count."""
        if self.rate is None:
            return
        counts = request.__dict__.setdefault(EARLY_COUNTS, {})
        counts[key] = self._count(key, increment)

    def discard_early_count(self, request: HttpRequest, key: str) -> None:
        """Undo ``count_early``: the request was refused before any throttle ran."""
        count = getattr(request, EARLY_COUNTS, {}).pop(key, None)
        if count is not None:
            self.cache.delete(count.counter)

    def _count(self, key: str, increment: Increment) -> Count:
        now = self.timer()
        window = math.floor(now / self.duration)
        counter = f"{key}:{window}"
        value = increment(counter, self.duration + 1)
        return Count(value, counter, now, (window + 1) * self.duration)

    def _increment(self, counter: str, ttl: int) -> int:
        return incr_with_expiry(self.cache, counter, ttl)
