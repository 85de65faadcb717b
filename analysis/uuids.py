"""Identifiers that come from outside (URLs, labels) as UUIDs."""

from __future__ import annotations

import uuid


def parse_uuid(value: object) -> uuid.UUID | None:
    """The UUID ``value`` spells, or None: a malformed id is an unknown one, not an error."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
