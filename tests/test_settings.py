"""Loading the settings has no side effects; the embedded broker's folders come with first use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_loading_the_settings_creates_no_directory(tmp_path):
    data_dir = tmp_path / "not-yet"
    env = {
        **os.environ,
        "VEXXY_DATA_DIR": str(data_dir),
        "DJANGO_SETTINGS_MODULE": "vexxy.settings",
    }
    env.pop("CELERY_BROKER_URL", None)  # the embedded filesystem:// default
    code = "from django.conf import settings; settings.DATA_DIR"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
    assert not data_dir.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["manage.py", "migrate", "--noinput"],  # the SQLite file needs its folder
        ["-m", "celery", "-A", "vexxy", "inspect", "ping", "--timeout", "0.5"],  # control only
    ],
    ids=["manage.py", "celery-inspect"],
)
def test_every_entry_point_makes_the_folders_of_the_embedded_defaults(tmp_path, command):
    data_dir = tmp_path / "fresh"
    env = {
        **os.environ,
        "VEXXY_DATA_DIR": str(data_dir),
        "DJANGO_SETTINGS_MODULE": "vexxy.settings",
    }
    for name in ("CELERY_BROKER_URL", "DATABASE_URL"):
        env.pop(name, None)
    subprocess.run([sys.executable, *command], cwd=ROOT, env=env, timeout=120, check=False)
    assert sorted(p.name for p in (data_dir / "broker").iterdir()) == [
        "control",
        "processed",
        "queue",
    ]
    if command[0] == "manage.py":
        assert (data_dir / "vexxy.sqlite3").exists()


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


@pytest.mark.parametrize(("pooling", "expected"), [("true", "True"), (None, "False")])
def test_transaction_pooling_turns_off_server_side_cursors(pooling, expected):
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://vexxy@pgbouncer.example:6432/vexxy",
        "DJANGO_SETTINGS_MODULE": "vexxy.settings",
    }
    env.pop("DATABASE_TRANSACTION_POOLING", None)
    if pooling:
        env["DATABASE_TRANSACTION_POOLING"] = pooling
    code = (
        "from django.conf import settings; db = settings.DATABASES['default']; "
        "print(db['DISABLE_SERVER_SIDE_CURSORS'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == expected, done.stderr
