"""Loading the settings has no side effects; the embedded broker's folders come with first use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_loading_the_settings_and_the_celery_app_creates_no_directory(tmp_path):
    data_dir = tmp_path / "not-yet"
    env = {
        **os.environ,
        "VEXXY_DATA_DIR": str(data_dir),
        "DJANGO_SETTINGS_MODULE": "vexxy.settings",
    }
    env.pop("CELERY_BROKER_URL", None)  # the embedded filesystem:// default
    code = "import django; django.setup(); from vexxy.celery import app; app.conf.broker_url"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
    assert not data_dir.exists()


def test_the_first_publish_makes_the_filesystem_brokers_folders(tmp_path):
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "VEXXY_DATA_DIR": str(data_dir),
        "DJANGO_SETTINGS_MODULE": "vexxy.settings",
    }
    env.pop("CELERY_BROKER_URL", None)
    code = (
        "import django; django.setup(); from vexxy.celery import app; "
        "app.send_task('analysis.reconcile_sandboxes')"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
    assert sorted(p.name for p in (data_dir / "broker").iterdir()) == [
        "control",
        "processed",
        "queue",
    ]
    assert len(list((data_dir / "broker" / "queue").iterdir())) == 1  # the message is there
