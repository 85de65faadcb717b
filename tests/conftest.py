"""Shared fixtures.

Tests run on whatever the environment provides: SQLite, the database cache and
eager Celery by default; PostgreSQL, Redis and real worker processes when
``DATABASE_URL``, ``REDIS_URL`` and ``CELERY_BROKER_URL`` are set (CI sets them).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from analysis.models import AnalysisJob
from analysis.profiles import normalize_config
from analysis.sandbox.client import reset_client
from analysis.status import TERMINAL
from reliability.logs import RequestIdFilter
from tests.support.kube_api import running_kube_api
from tests.support.processes import WORKER_ENV, start_celery_worker
from tests.support.queues import published_to
from vexxy.celery import app as celery_app

REPO = Path(__file__).resolve().parent.parent

# Fixtures that live next to the helpers they use.
pytest_plugins = ["tests.support.cache", "tests.support.real_workers", "tests.support.live_server"]


# A test that asks for one of these runs real processes: it is marked slow.
REAL_PROCESS_FIXTURES = frozenset(
    {"child_env", "workers", "celery_worker_process", "live_gunicorn"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REAL_PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_report_header(config: pytest.Config) -> list[str]:
    db = settings.DATABASES["default"]
    cache = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    broker = settings.CELERY_BROKER_URL.split("://", 1)[0]
    return [f"vexxy: database={db['ENGINE'].rsplit('.', 1)[-1]} cache={cache} broker={broker}"]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A file-backed SQLite test database, so that child processes can open it too."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        db.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


@pytest.fixture(autouse=True, scope="session")
def _eager_celery() -> None:
    """Tasks run in-process unless a test asks for a real worker.

    Celery read the Django settings at import, so its own conf is what counts.
    """
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_store_eager_result = True


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing() -> None:
    """Admin users' passwords: what a test checks is the login, not the hash's cost."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def child_env(transactional_db, tmp_path: Path) -> dict[str, str]:
    """Environment for a child process that shares this test's database and cache."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        database_url = f"sqlite:///{db['NAME']}"
    else:
        auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
        database_url = f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "DJANGO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="vexxy.settings",
        DATABASE_URL=database_url,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(REPO),
    )
    if "CELERY_BROKER_URL" not in os.environ:
        # The same filesystem broker folder as this process publishes to.
        env["VEXXY_DATA_DIR"] = str(settings.DATA_DIR)
    return env


@pytest.fixture
def celery_worker_process(child_env: dict[str, str], tmp_path: Path):
    """A real ``celery worker`` on a queue of its own; yields (queue, output)."""
    queue = f"test-{os.getpid()}-{tmp_path.name}"
    env = {**child_env, **WORKER_ENV}
    process, output = start_celery_worker(queue, queue, env, REPO)
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield queue, output
    finally:
        celery_app.conf.task_always_eager = previous
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def sandbox_disabled(settings):
    settings.SANDBOX_ENABLED = False


@pytest.fixture
def unreachable_cluster(settings, tmp_path, clean_cache):
    """Sandbox on, kubeconfig pointing at a port where nothing listens."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "test",
                "clusters": [
                    {"name": "test", "cluster": {"server": f"http://127.0.0.1:{free_port()}"}}
                ],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                "users": [{"name": "test", "user": {"token": "not-a-secret"}}],
            }
        )
    )
    settings.SANDBOX_ENABLED = True
    settings.K8S_IN_CLUSTER = False
    settings.KUBECONFIG = str(kubeconfig)
    reset_client()
    yield
    reset_client()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def organization(db):
    from analysis.models import Organization

    return Organization.objects.create(name="Acme", slug="acme", monthly_analysis_quota=50)


@pytest.fixture
def other_organization(db):
    from analysis.models import Organization

    return Organization.objects.create(name="Globex", slug="globex")


def api_client_for(organization):
    """A DRF test client that authenticates as a fresh key of ``organization``."""
    from rest_framework.test import APIClient

    from analysis.api_keys import issue_key

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {issue_key(organization, 'test').plaintext}")
    return client


@pytest.fixture
def api(organization):
    return api_client_for(organization)


@pytest.fixture
def other_api(other_organization):
    return api_client_for(other_organization)


@pytest.fixture
def rate(settings):
    """Sets the API rate limit of this process for the test."""
    from analysis.api.authentication import ApiKeyRateThrottle

    def set_rate(value: str) -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"api_key": value},
        }
        ApiKeyRateThrottle.THROTTLE_RATES = {"api_key": value}

    yield set_rate
    if "THROTTLE_RATES" in ApiKeyRateThrottle.__dict__:
        del ApiKeyRateThrottle.THROTTLE_RATES


ENVELOPE_KEYS = {"error", "message", "details", "timestamp", "request_id"}


def make_job(organization, *, age_days: float = 0, **fields: Any) -> AnalysisJob:
    """The one job factory: a valid queued job of ``organization``; ``fields`` set any column.

    ``age_days`` moves its creation (and, for a finished status, completion) into the past;
    ``profile`` picks the preset its config is normalised from unless ``config`` is given.
    """
    moment = timezone.now() - timedelta(days=age_days)
    profile = fields.get("profile", "custom")
    defaults: dict[str, Any] = {
        "image_ref": "docker.io/library/nginx:1.25",
        "image_digest": "sha256:" + "e" * 64,
        "profile": profile,
        "config": normalize_config(profile, {}),
        "created_at": moment,
    }
    if fields.get("status") in TERMINAL:
        defaults["completed_at"] = moment
    return AnalysisJob.objects.create(organization=organization, **{**defaults, **fields})


def response_json(response) -> Any:
    """The JSON body of a response, streamed (VEX downloads) or not."""
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return json.loads(content)


def assert_envelope(response, status: int, code: str, details=None) -> dict:
    """The whole error envelope: status, keys, code, timestamp, request ID, details."""
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == ENVELOPE_KEYS
    assert body["error"] == code
    assert body["request_id"] == response["X-Request-ID"]
    assert body["timestamp"].endswith("Z")
    assert isinstance(body["message"], str)
    assert body["message"]
    if details is not None:
        assert body["details"] == details
    return body


@pytest.fixture
def kube_api(settings, tmp_path):
    """A Kubernetes API double over real HTTP; settings point the service at it."""
    with running_kube_api(settings, tmp_path) as kube:
        yield kube


@pytest.fixture
def sandbox_ready(kube_api, clean_cache):
    """A reachable cluster with Kubescape installed: submissions are accepted."""
    kube_api.with_kubescape(available=True)
    return kube_api


@pytest.fixture
def log_records():
    """Records reaching the root logger, through the production ``RequestIdFilter``."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield records
    root.removeHandler(handler)


@pytest.fixture
def unconsumed_queue():
    """Tasks are really published, to a queue of this test's that no worker reads."""
    import uuid

    with published_to(f"test-unconsumed-{uuid.uuid4().hex[:8]}") as queue:
        yield queue
