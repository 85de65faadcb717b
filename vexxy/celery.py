"""The Celery application; configured from Django settings (``CELERY_*``)."""

from __future__ import annotations

import logging.config
import os
from pathlib import Path
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vexxy.settings")


def use_metrics_dir(**_: object) -> None:
    """Worker and beat write metrics to the web server's directory (when on its host).

    ``import_modules`` is sent by worker and beat alone, before the task modules
    (and with them prometheus_client) are imported; connected before the app is
    made, this runs ahead of Celery's Django fix-up, which sets Django up there.
    Prefork children inherit the variable; each writes files of its own pid.
    """
    from django.conf import settings

    from reliability.metrics.multiproc import use_multiproc_dir

    use_multiproc_dir(Path(settings.PROMETHEUS_MULTIPROC_DIR))


def forget_exited_metrics(**_: object) -> None:
    from reliability.metrics.multiproc import fold_dead_process_files

    fold_dead_process_files()


def drop_live_gauges(pid: int, **_: object) -> None:
    from reliability.metrics.multiproc import mark_process_dead

    mark_process_dead(pid)


def serve_metrics(**kwargs: object) -> None:
    """``METRICS_WORKER_PORT``: this worker serves its host's /metrics (no web server here)."""
    from reliability.metrics.server import serve_worker_metrics

    serve_worker_metrics(**kwargs)


signals.import_modules.connect(use_metrics_dir, weak=False)
signals.worker_ready.connect(serve_metrics, weak=False)
signals.worker_init.connect(forget_exited_metrics, weak=False)
signals.worker_process_shutdown.connect(drop_live_gauges, weak=False)

app = Celery("vexxy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect
def use_django_logging(**_: object) -> None:
    """Workers log exactly like the web process: same handlers, same request-ID filter."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@signals.worker_process_init.connect
def trace_worker_child(**_: object) -> None:
    """Prefork: each child instruments itself after the fork; exporter threads do not survive it."""
    from vexxy.tracing import configure_tracing

    configure_tracing("worker")


@signals.worker_init.connect
def trace_worker_without_children(sender: Any = None, **_: object) -> None:
    """The solo and thread pools run tasks in this process: no worker_process_init follows."""
    pool = getattr(sender, "pool_cls", None)  # a name here ("prefork", "solo"), or a class
    name = pool if isinstance(pool, str) else getattr(pool, "__module__", "")
    if not any(forking in (name or "") for forking in ("prefork", "processes")):
        from vexxy.tracing import configure_tracing

        configure_tracing("worker")


@signals.beat_init.connect
def trace_beat(**_: object) -> None:
    from vexxy.tracing import configure_tracing

    configure_tracing("beat")


@app.on_after_configure.connect
def make_data_folders(**_: object) -> None:
    """Every process that uses Celery (worker, beat, a publisher, ``celery inspect``) has them."""
    from vexxy.storage import make_data_folders

    make_data_folders()
