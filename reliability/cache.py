"""Cache backends that keep their promises under concurrency, and an atomic counter.

* ``AtomicDatabaseCache``: the stock ``DatabaseCache.incr`` reads the value and
  writes it back; two processes incrementing at once both write the same number.
  Circuit breakers count failures with ``incr``, so here the row is locked for the
  read-modify-write (``SELECT … FOR UPDATE``; on SQLite the ``BEGIN IMMEDIATE`` of
  our settings serialises writers).
* ``RedisCache``: Django's, but one ``redis.Redis`` per connection pool for the
  life of the process. The stock client builds a new one (with its table of
  response callbacks) for every call, which costs more than the round trip.
* ``incr_with_expiry``: one atomic step for rate limits — a single Lua call on
  Redis, ``add`` + ``incr`` elsewhere.
* ``get_and_count``: a read and such a step in one round trip, for a request that
  needs both (an API key's cached row and its rate-limit counter).
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from django.db import connections, router, transaction
from django.utils.functional import cached_property

# INCR, and start the expiry with the first increment: a counter never outlives its window.
INCR_WITH_EXPIRY = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


# The same, and GET another key in the same call (false, hence nil, when it is absent).
GET_AND_COUNT = """
local count = redis.call('INCR', KEYS[2])
if count == 1 then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
return {redis.call('GET', KEYS[1]), count}
"""


class AtomicDatabaseCache(DatabaseCache):
    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        with transaction.atomic(using=db):
            if connection.features.has_select_for_update:
                table = connection.ops.quote_name(self._table)
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"SELECT cache_key FROM {table} WHERE cache_key = %s FOR UPDATE",  # noqa: S608 - quoted table name
                        [self.make_and_validate_key(key, version=version)],
                    )
            return super().incr(key, delta, version)


class ReusedRedisClients(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}
        # Bound to the write client, which is always pool 0.
        self._incr_script: Any = None
        self._get_and_count_script: Any = None

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = self._client(
                connection_pool=self._get_connection_pool(write)
            )
        return client

    def incr_with_expiry(self, key: str, ttl: int) -> int:
        if self._incr_script is None:
            self._incr_script = self.get_client(key, write=True).register_script(INCR_WITH_EXPIRY)
        return int(self._incr_script(keys=[key], args=[ttl]))

    def get_and_count(self, key: str, counter: str, ttl: int) -> tuple[Any, int]:
        if self._get_and_count_script is None:
            client = self.get_client(counter, write=True)
            self._get_and_count_script = client.register_script(GET_AND_COUNT)
        value, count = self._get_and_count_script(keys=[key, counter], args=[ttl])
        return (None if value is None else self._serializer.loads(value)), int(count)


class RedisCache(DjangoRedisCache):
    @cached_property
    def _cache(self) -> ReusedRedisClients:
        return ReusedRedisClients(self._servers, **self._options)

    def incr_with_expiry(self, key: Any, ttl: int, version: int | None = None) -> int:
        return self._cache.incr_with_expiry(self.make_and_validate_key(key, version=version), ttl)

    def get_and_count(self, key: Any, counter: Any, ttl: int) -> tuple[Any, int]:
        return self._cache.get_and_count(
            self.make_and_validate_key(key), self.make_and_validate_key(counter), ttl
        )


def incr_with_expiry(cache: BaseCache, key: str, ttl: int) -> int:
    """Add one to ``key`` (created at 0, expiring ``ttl`` s later) and return the new count.

    Atomic wherever the backend's ``add`` and ``incr`` are (Redis, the database cache
    above, the local-memory cache).
    """
    method = getattr(cache, "incr_with_expiry", None)
    if method is not None:
        return method(key, ttl)
    while True:
        cache.add(key, 0, ttl)
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr: start it again
            continue


def counts_in_one_trip(cache: BaseCache) -> bool:
    """Whether ``get_and_count`` is one round trip on ``cache`` (Redis), not two."""
    return hasattr(cache, "get_and_count")


def get_and_count(cache: BaseCache, key: str, counter: str, ttl: int) -> tuple[Any, int]:
    """``cache.get(key)`` and ``incr_with_expiry(cache, counter, ttl)``: one round trip on Redis."""
    method = getattr(cache, "get_and_count", None)
    if method is not None:
        return method(key, counter, ttl)
    return cache.get(key), incr_with_expiry(cache, counter, ttl)
