"""A Celery queue of a test's own, which this process really publishes to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from vexxy.celery import app as celery_app


@contextmanager
def published_to(queue: str) -> Iterator[str]:
    """Tasks published here go to ``queue`` (not run eagerly); it is purged and deleted after."""
    conf = celery_app.conf
    saved = (conf.task_always_eager, conf.task_default_queue)
    conf.task_always_eager, conf.task_default_queue = False, queue
    try:
        yield queue
    finally:
        conf.task_always_eager, conf.task_default_queue = saved
        with celery_app.connection_for_write() as connection:
            channel = connection.default_channel
            channel.queue_purge(queue)
            channel.queue_delete(queue)
