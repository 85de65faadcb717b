"""Status writes survive a lost database connection (a restart, a failover)."""

from __future__ import annotations

import psycopg
import pytest
from django.db import InterfaceError, OperationalError, connection

from analysis.models import AnalysisJob
from analysis.status import JobStatus, transition
from tests.conftest import make_job
from tests.support.settings import override_reliability

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def postgresql(settings):
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL: the test ends this connection's server process, "
            "which SQLite does not have (CI runs it on PostgreSQL)"
        )
    override_reliability(settings, DB_RETRY_INITIAL_DELAY=0)


def kill_this_connection() -> None:
    """Ask the server, over a second connection, to end the backend serving Django's."""
    connection.ensure_connection()
    backend = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    dsn = {
        key: params[key]
        for key in ("dbname", "user", "password", "host", "port")
        if params.get(key)
    }
    with psycopg.connect(**dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [backend])


@pytest.mark.usefixtures("postgresql")
def test_a_status_change_is_retried_on_a_new_connection(organization):
    job = make_job(organization, profile="minimal", celery_task_id="t1")
    kill_this_connection()

    transition(job, JobStatus.RUNNING, where={"celery_task_id": "t1"})

    assert AnalysisJob.objects.get(pk=job.pk).status == JobStatus.RUNNING


@pytest.mark.usefixtures("postgresql")
def test_without_the_retry_the_same_write_fails():
    """Guards the test above: the killed connection really fails a plain query."""
    kill_this_connection()
    with pytest.raises((OperationalError, InterfaceError)):
        AnalysisJob.objects.update(priority=1)
    connection.close()
