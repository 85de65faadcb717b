"""Correlation IDs: one ID per unit of work, visible to every log record.

The ID lives in a context variable so that it follows the code through
threads' and tasks' own contexts without being passed around. HTTP requests,
Celery tasks and management commands each open a :func:`correlation_scope`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

HEADER = "X-Request-ID"
META_KEY = "HTTP_X_REQUEST_ID"
CELERY_HEADER = "request_id"

_VALID = re.compile(r"[A-Za-z0-9._:+/=-]{1,200}")

_request_id: ContextVar[str | None] = ContextVar("vexxy_request_id", default=None)


def new_request_id() -> str:
    return str(uuid.uuid4())


def is_valid_request_id(value: str | None) -> bool:
    """1 to 200 printable characters from ``[A-Za-z0-9._:+/=-]``."""
    return value is not None and _VALID.fullmatch(value) is not None


def get_request_id() -> str | None:
    return _request_id.get()


@contextmanager
def correlation_scope(request_id: str | None = None) -> Iterator[str]:
    """Bind ``request_id`` (or a fresh one) for the duration of the block."""
    value = request_id or new_request_id()
    token = _request_id.set(value)
    try:
        yield value
    finally:
        _request_id.reset(token)


def bind(request_id: str) -> Token[str | None]:
    """Bind without a block (signal-driven code); undo with :func:`unbind`."""
    return _request_id.set(request_id)


def unbind(token: Token[str | None]) -> None:
    _request_id.reset(token)
