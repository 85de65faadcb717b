"""What must never reach a log line in clear."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"

_SENSITIVE = re.compile(
    r"pass(word|wd)?|secret|token|api[-_]?key|apikey|auth|credential|signature|session|cookie"
    r"|private|^key$|^sig$|^code$",
    re.IGNORECASE,
)


def is_sensitive(name: str) -> bool:
    return bool(_SENSITIVE.search(name))


def redact_mapping(items: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``items`` with the values of sensitive keys replaced."""
    return {key: REDACTED if is_sensitive(key) else value for key, value in items.items()}
