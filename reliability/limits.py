"""Request body limits, per path prefix."""

from __future__ import annotations

from django.conf import settings

from .settings import reliability_settings


def body_limit(path: str) -> int | None:
    """The largest body accepted at ``path``: ``BODY_SIZE_LIMITS`` by prefix, else Django's."""
    for prefix, limit in reliability_settings.BODY_SIZE_LIMITS.items():
        if path.startswith(prefix):
            return limit
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE
