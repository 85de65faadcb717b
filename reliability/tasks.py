"""Tasks that belong to the reliability layer itself."""

from __future__ import annotations

import logging

from celery import shared_task

from .correlation import get_request_id

logger = logging.getLogger("reliability.tasks")


@shared_task(name="reliability.echo_request_id", ignore_result=False)
def echo_request_id() -> str | None:
    """Round-trip check: answers with the correlation ID the worker bound."""
    request_id = get_request_id()
    logger.info("echo_request_id ran", extra={"echoed_request_id": request_id})
    return request_id
