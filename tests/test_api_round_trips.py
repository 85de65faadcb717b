"""An API request reads its key's cached row and counts itself against the key's rate limit
in one round trip to Redis, and is counted once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache
from redis.connection import AbstractConnection
from rest_framework.test import APIClient

from analysis.api.authentication import ApiKeyRateThrottle
from analysis.api_keys import issue_key
from bench.servers import throwaway_redis
from tests.conftest import make_job
from tests.support.tools import required_tool

REDIS_CACHE = "reliability.cache.RedisCache"


@pytest.fixture
def redis_cache(settings) -> Iterator[None]:
    """The default cache on Redis, emptied: CI's, or a redis-server of the test's own."""
    if settings.CACHES["default"]["BACKEND"] == REDIS_CACHE:
        cache.clear()
        yield
        cache.clear()
        return
    required_tool("redis-server", "redis-server")
    with throwaway_redis() as url:
        settings.CACHES = {"default": {"BACKEND": REDIS_CACHE, "LOCATION": f"{url}/0"}}
        yield


@pytest.fixture
def round_trips(monkeypatch) -> list[bytes]:
    """The commands sent to Redis, one entry per round trip."""
    sent: list[bytes] = []
    send = AbstractConnection.send_packed_command

    def recording(self, command, check_health=True):
        packed = command if isinstance(command, bytes | str) else b"".join(command)
        sent.append(packed if isinstance(packed, bytes) else packed.encode())
        return send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", recording)
    return sent


@pytest.mark.django_db
def test_a_status_request_is_one_round_trip_and_one_count(
    api, organization, redis_cache, rate, round_trips, monkeypatch
):
    rate("3/minute")
    monkeypatch.setattr(ApiKeyRateThrottle, "timer", lambda self: 1_800_000_000.0)
    url = f"/api/v1/analysis/{make_job(organization).pk}/status"
    assert api.get(url).status_code == 200  # caches the key's row, loads the script
    round_trips.clear()

    assert [api.get(url).status_code for _ in range(3)] == [200, 200, 429]
    assert len(round_trips) == 3
    assert all(b"EVALSHA" in command for command in round_trips)


def throttle_counters() -> list[bytes]:
    return cache._cache.get_client().keys("*throttle_*")


@pytest.mark.django_db
def test_a_key_that_is_refused_leaves_no_counter(organization, redis_cache, rate):
    rate("3/minute")
    prefix = issue_key(organization, "known").api_key.prefix
    for presented in (f"vx_{prefix}_not-its-secret", "vx_000000000000_no-such-key"):
        response = APIClient().get("/api/v1/analysis", HTTP_X_API_KEY=presented)
        assert response.status_code == 401
    assert throttle_counters() == []


@pytest.mark.django_db
def test_without_the_key_cache_the_throttle_counts_once_on_its_own(
    api, organization, redis_cache, rate, settings, monkeypatch
):
    rate("3/minute")
    settings.API_KEY_CACHE_SECONDS = 0
    monkeypatch.setattr(ApiKeyRateThrottle, "timer", lambda self: 1_800_000_000.0)
    url = f"/api/v1/analysis/{make_job(organization).pk}/status"
    assert [api.get(url).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert len(throttle_counters()) == 1
