"""The fixed-window throttle, and a count taken early in a request's other round trip."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import RequestFactory
from rest_framework.request import Request

from reliability.cache import get_and_count
from reliability.throttling import FixedWindowRateThrottle

pytestmark = pytest.mark.usefixtures("clean_cache")


class PerClient(FixedWindowRateThrottle):
    scope = "client"
    THROTTLE_RATES = {"client": "2/minute"}
    timer = staticmethod(lambda: 1_800_000_040.0)  # 40 s into a minute

    def get_cache_key(self, request, view):
        return f"throttle_client_{request.META['REMOTE_ADDR']}"


def request() -> Request:
    return Request(RequestFactory().get("/x"))


def test_the_rate_per_window_then_the_time_left_in_it():
    throttle = PerClient()
    assert [throttle.allow_request(request(), None) for _ in range(3)] == [True, True, False]
    assert throttle.wait() == 20.0


def test_a_request_counted_early_is_not_counted_again():
    calls = []

    def increment(counter: str, ttl: int) -> int:
        calls.append((counter, ttl))
        return 2  # the second request of the window

    early = request()
    PerClient().count_early(early._request, "throttle_client_127.0.0.1", increment)
    assert calls == [("throttle_client_127.0.0.1:30000000", 61)]

    throttle = PerClient()
    assert throttle.allow_request(early, None) is True
    assert throttle.wait() == 20.0
    assert cache.get("throttle_client_127.0.0.1:30000000") is None  # nothing counted twice
    assert throttle.allow_request(request(), None) is True  # its own count: the first
    assert throttle.allow_request(request(), None) is True
    assert throttle.allow_request(request(), None) is False


def test_get_and_count_reads_one_key_and_counts_another():
    cache.set("row", {"name": "kept"})
    assert get_and_count(cache, "row", "counter", 60) == ({"name": "kept"}, 1)
    assert get_and_count(cache, "absent", "counter", 60) == (None, 2)
