"""A lock in the shared cache, so that concurrent runs of one maintenance task act once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache import caches

from .settings import reliability_settings


@contextmanager
def cache_lock(name: str, ttl: float) -> Iterator[bool]:
    """Yields whether this caller holds ``name``; ``ttl`` frees it if the holder dies.

    ``cache.add`` is atomic on every backend, so at most one caller gets True.
    """
    cache = caches[reliability_settings.LOCK_CACHE]
    key, token = f"lock:{name}", uuid.uuid4().hex
    acquired = cache.add(key, token, timeout=max(1, int(ttl)))
    try:
        yield acquired
    finally:
        if acquired and cache.get(key) == token:
            cache.delete(key)
