"""Carries the correlation ID from the publisher into the Celery task that runs.

On publish the current ID is written into the message headers; in the worker
it is bound before the task body runs and unbound afterwards, so a worker
process never lends one task's ID to the next. A task with no ID in its
message (beat, a shell) gets a fresh one.
"""

from __future__ import annotations

from contextvars import Token
from typing import Any

from celery import signals

from . import correlation

_tokens: dict[str, Token] = {}


@signals.before_task_publish.connect(dispatch_uid="reliability.request_id.publish")
def add_request_id_header(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = correlation.get_request_id()
    if headers is not None and request_id and correlation.CELERY_HEADER not in headers:
        headers[correlation.CELERY_HEADER] = request_id


@signals.task_prerun.connect(dispatch_uid="reliability.request_id.prerun")
def bind_request_id(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    carried = _carried(task.request) if task else None
    if not correlation.is_valid_request_id(carried):
        # Eager tasks run inside their caller's context and keep its ID.
        carried = correlation.get_request_id() or correlation.new_request_id()
    if task_id:
        _tokens[task_id] = correlation.bind(carried)


@signals.task_postrun.connect(dispatch_uid="reliability.request_id.postrun")
def unbind_request_id(task_id: str | None = None, **_: Any) -> None:
    token = _tokens.pop(task_id, None) if task_id else None
    if token is not None:
        correlation.unbind(token)


def _carried(request: Any) -> str | None:
    # A worker merges message headers into the request; an eager apply keeps them apart.
    value = getattr(request, correlation.CELERY_HEADER, None)
    return value or (getattr(request, "headers", None) or {}).get(correlation.CELERY_HEADER)
