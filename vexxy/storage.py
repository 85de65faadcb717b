"""The folders the embedded defaults keep their data in, made by each process that starts.

Importing the settings has no side effects; ``manage.py``, the WSGI/ASGI
applications and the Celery app call :func:`make_data_folders` when they start,
so that the SQLite file, the beat schedule and the ``filesystem://`` broker have
somewhere to live on a fresh machine.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

FILESYSTEM_BROKER_FOLDERS = (
    "data_folder_in",
    "data_folder_out",
    "processed_folder",
    "control_folder",
)


def make_data_folders() -> None:
    Path(settings.DATA_DIR).mkdir(parents=True, exist_ok=True)
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        for key in FILESYSTEM_BROKER_FOLDERS:
            if options.get(key):
                Path(options[key]).mkdir(parents=True, exist_ok=True)
