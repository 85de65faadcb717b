"""The Celery application; configured from Django settings (``CELERY_*``)."""

from __future__ import annotations

import logging.config
import os

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


@app.on_after_configure.connect
def make_data_folders(**_: object) -> None:
    """Every process that uses Celery (worker, beat, a publisher, ``celery inspect``) has them."""
    from vexxy.storage import make_data_folders

    make_data_folders()
