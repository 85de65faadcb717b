"""Status writes survive a lost database connection (a restart, a failover)."""

from __future__ import annotations

import psycopg
import pytest
from django.db import InterfaceError, OperationalError, ProgrammingError, connection, connections

from analysis.models import AnalysisJob
from analysis.status import JobStatus, transition
from tests.conftest import make_job
from tests.support.sandbox_world import FakeClock
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


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """The clock reliability.postgresql reads for its health-check grace."""
    import reliability.postgresql.base as backend

    fake = FakeClock()
    monkeypatch.setattr(backend, "time", fake)
    return fake


def serve() -> int:
    """One request as Django's request_started/request_finished handle it; the backend's pid."""
    connection.close_if_unusable_or_obsolete()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]
    finally:
        connection.close_if_unusable_or_obsolete()


@pytest.mark.usefixtures("postgresql")
def test_the_service_uses_the_backend_with_a_grace():
    from reliability.postgresql.base import DatabaseWrapper

    default = connections["default"]
    assert isinstance(default, DatabaseWrapper)
    assert default.settings_dict["CONN_HEALTH_CHECKS"] is True
    assert default.settings_dict["CONN_MAX_AGE"] > 0


@pytest.mark.usefixtures("postgresql")
def test_past_the_grace_the_health_check_replaces_a_dead_connection(settings, clock):
    override_reliability(settings, DB_HEALTH_CHECK_GRACE=0.5)
    first = serve()
    kill_this_connection()
    clock.now += 0.5

    assert serve() != first


@pytest.mark.usefixtures("postgresql")
def test_within_the_grace_a_connection_that_served_is_not_checked(settings, clock):
    """The trade: a server restart inside the grace fails one request, then the next one
    gets a new connection (Django closes a connection that raised when the request ends)."""
    override_reliability(settings, DB_HEALTH_CHECK_GRACE=0.5)
    first = serve()
    kill_this_connection()
    clock.now += 0.4

    with pytest.raises((OperationalError, InterfaceError)):
        serve()
    assert connection.connection is None
    assert serve() != first


@pytest.mark.usefixtures("postgresql")
def test_a_grace_of_zero_checks_before_every_request(settings, clock):
    override_reliability(settings, DB_HEALTH_CHECK_GRACE=0)
    first = serve()
    kill_this_connection()

    assert serve() != first


@pytest.mark.usefixtures("postgresql")
def test_a_request_that_did_not_use_the_connection_does_not_renew_the_grace(settings, clock):
    override_reliability(settings, DB_HEALTH_CHECK_GRACE=0.5)
    first = serve()
    clock.now += 0.4
    connection.close_if_unusable_or_obsolete()  # a request with no query starts...
    connection.close_if_unusable_or_obsolete()  # ...and ends
    kill_this_connection()
    clock.now += 0.2

    assert serve() != first


@pytest.mark.usefixtures("postgresql")
def test_an_idle_connection_after_a_failed_query_is_checked(settings, clock):
    """Django marks a connection checked when a request that raised ends; the grace still
    counts from its last query, not from the next request's start."""
    override_reliability(settings, DB_HEALTH_CHECK_GRACE=0.5)
    first = serve()
    connection.close_if_unusable_or_obsolete()
    with pytest.raises(ProgrammingError), connection.cursor() as cursor:
        cursor.execute("SELECT no_such_column FROM no_such_table")
    connection.close_if_unusable_or_obsolete()
    clock.now += 10
    kill_this_connection()

    assert serve() != first
