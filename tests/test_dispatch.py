"""Nothing accepted is lost: a job whose publish failed waits, and is published exactly once."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from contextlib import contextmanager
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from analysis.dispatch import BROKER_DOWN, NOT_PENDING, PUBLISHED, publish
from analysis.models import AnalysisJob
from tests.conftest import free_port, make_job
from vexxy.celery import app as celery_app

SUBMIT = "/api/v1/analysis/submit"
VALID = {"image_ref": "nginx:1.27", "image_digest": "sha256:" + "d" * 64}


def _forget_connections() -> None:
    # Celery caches its connection and producer pools per app; drop them so the next
    # publish connects to whatever broker_url now says. Celery has no public call for
    # this (app.close() also deregisters the app); this is what its own fork handler does.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextmanager
def broker_unreachable():
    """Publishing goes to a Redis port where nothing listens."""
    conf = celery_app.conf
    saved = (conf.get("broker_write_url"), conf.broker_transport_options, conf.task_always_eager)
    # broker_write_url: the CELERY_BROKER_URL environment variable (CI) outranks broker_url.
    conf.broker_write_url = f"redis://127.0.0.1:{free_port()}/0"
    conf.broker_transport_options = {"socket_connect_timeout": 1}
    conf.task_always_eager = False
    _forget_connections()
    try:
        yield
    finally:
        conf.broker_write_url, conf.broker_transport_options, conf.task_always_eager = saved
        _forget_connections()


@pytest.fixture
def broker_down():
    with broker_unreachable():
        yield


def dispatch(*args: str, fails: bool = False) -> dict:
    """Run the command; its JSON report. ``fails``: it must exit 1 (a job was not published)."""
    out = StringIO()
    command = ("dispatch_pending_jobs", "--grace-seconds", "0", "--json", *args)
    if fails:
        with pytest.raises(CommandError) as raised:
            call_command(*command, stdout=out)
        assert raised.value.returncode == 1
    else:
        call_command(*command, stdout=out)
    report = json.loads(out.getvalue())
    assert len(report.pop("request_id")) == 36  # each run has its own correlation ID
    return report


@pytest.mark.django_db
@pytest.mark.usefixtures("sandbox_ready")
def test_broker_down_at_submit_then_dispatched_once(
    api, django_capture_on_commit_callbacks, caplog, settings
):
    with broker_unreachable():
        with (
            caplog.at_level(logging.WARNING, "analysis.dispatch"),
            django_capture_on_commit_callbacks(execute=True),
        ):
            response = api.post(SUBMIT, VALID, format="json")
        assert response.status_code == 201
        job = AnalysisJob.objects.get(pk=response.json()["job_id"])
        assert (job.status, job.dispatched_at, job.celery_task_id) == ("queued", None, "")
        assert "stays queued for dispatch_pending_jobs" in caplog.text

        assert dispatch(fails=True)["failed"] == [str(job.pk)]  # still down: reported, kept
        job.refresh_from_db()
        assert job.dispatched_at is None

    # The broker is back: published once, and never again. The (eager) task claims the
    # job once; with the cluster gone meanwhile it fails at preflight instead of waiting.
    settings.SANDBOX_ENABLED = False
    assert dispatch()["published"] == [str(job.pk)]
    job.refresh_from_db()
    assert job.dispatched_at is not None
    assert (job.attempts, job.status, job.error_code) == (1, "failed", "SERVICE_UNAVAILABLE")
    assert dispatch() == {
        "lost": [],
        "pending": [],
        "published": [],
        "failed": [],
        "dry_run": False,
    }


@pytest.mark.django_db
def test_dispatch_publishes_pending_jobs_exactly_once(organization):
    job = make_job(
        organization,
        image_digest=VALID["image_digest"],
        profile="minimal",
    )
    assert dispatch("--dry-run") == {
        "lost": [],
        "pending": [str(job.pk)],
        "published": [],
        "failed": [],
        "dry_run": True,
    }
    job.refresh_from_db()
    assert job.dispatched_at is None

    report = dispatch()
    assert report["published"] == [str(job.pk)]
    job.refresh_from_db()
    assert job.dispatched_at is not None
    assert job.celery_task_id
    assert job.attempts == 1  # the (eager) task claimed it

    assert dispatch()["pending"] == []
    assert publish(job.pk) == NOT_PENDING


@pytest.mark.django_db
def test_publish_reports_a_broker_outage(organization, broker_down):
    job = make_job(
        organization,
        image_digest=VALID["image_digest"],
        profile="minimal",
    )
    assert publish(job.pk) == BROKER_DOWN
    job.refresh_from_db()
    assert (job.dispatched_at, job.celery_task_id) == (None, "")
    assert PUBLISHED == "published"


@pytest.mark.django_db
@pytest.mark.usefixtures("unconsumed_queue")
def test_a_publish_that_was_lost_is_published_again_and_the_old_message_refused(organization):
    from datetime import timedelta

    from django.utils import timezone

    from analysis import jobs

    job = make_job(
        organization,
        image_digest=VALID["image_digest"],
        profile="minimal",
        celery_task_id="lost-message",
        dispatched_at=timezone.now() - timedelta(hours=3),
    )

    planned = dispatch("--dry-run")
    assert (planned["lost"], planned["published"]) == ([str(job.pk)], [])
    job.refresh_from_db()
    assert job.celery_task_id == "lost-message"

    report = dispatch()
    assert (report["lost"], report["published"]) == ([str(job.pk)], [str(job.pk)])
    job.refresh_from_db()
    assert job.celery_task_id not in ("", "lost-message")
    assert not jobs.claim(job, "lost-message")  # the old message, should it arrive
    assert dispatch()["lost"] == []


@pytest.mark.slow
def test_a_fresh_web_process_finds_the_task_it_publishes_by_name():
    """dispatch does not import the task module; the app registers it when Django is ready."""
    code = (
        "import django; django.setup(); from celery import current_app; "
        "from analysis.dispatch import RUN_ANALYSIS; print(current_app.tasks[RUN_ANALYSIS].name)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "vexxy.settings"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "analysis.run_analysis"
