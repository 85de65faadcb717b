"""The shared cache, emptied around a test: needs nothing but Django (the bare run uses it)."""

from __future__ import annotations

import pytest
from django.core.cache import cache


@pytest.fixture
def clean_cache(db):
    cache.clear()
    yield cache
    cache.clear()
