"""The Celery application; configured from Django settings (``CELERY_*``)."""

from __future__ import annotations

import logging.config
import os
from pathlib import Path

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vexxy.settings")

app = Celery("vexxy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect
def use_django_logging(**_: object) -> None:
    """Workers log exactly like the web process: same handlers, same request-ID filter."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


FILESYSTEM_FOLDERS = ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")


@signals.worker_init.connect
@signals.beat_init.connect
@signals.before_task_publish.connect
def make_broker_folders(**_: object) -> None:
    """The ``filesystem://`` broker's folders, made by the process that first needs them."""
    options = app.conf.broker_transport_options or {}
    for key in FILESYSTEM_FOLDERS:
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)
