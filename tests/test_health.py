"""/health, /livez and /readyz: honest answers, and a process that starts with dependencies down."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.error import HTTPError

import pytest

from analysis.sandbox.client import KubernetesUnreachableError
from reliability.circuit import get_breaker
from tests.conftest import free_port
from tests.support.live_server import start_gunicorn, stop

REPO = Path(__file__).resolve().parent.parent
ENVELOPE_KEYS = {"error", "message", "details", "timestamp", "request_id"}


@pytest.mark.django_db
def test_health_is_healthy_with_the_sandbox_disabled(client, sandbox_disabled, clean_cache):
    response = client.get("/health")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "healthy"
    assert body["service"] == "vexxy-premium"
    assert body["request_id"] == response["X-Request-ID"]
    assert body["timestamp"].endswith("Z")
    checks = body["checks"]
    assert set(checks) == {
        "database",
        "celery",
        "kubernetes",
        "kubescape",
        "sandbox_slots",
        "circuit_breakers",
    }
    assert checks["database"]["status"] == "healthy"
    assert checks["celery"] == {
        "status": "healthy",
        "required": True,
        "mode": "eager",
        "latency_ms": checks["celery"]["latency_ms"],
    }
    for name in ("kubernetes", "kubescape", "sandbox_slots"):
        assert checks[name]["status"] == "disabled"
        assert checks[name]["required"] is False
    assert checks["circuit_breakers"]["breakers"]["kubernetes"]["state"] == "closed"
    assert not {"error", "message", "details"} & set(body)


@pytest.mark.django_db
def test_an_open_circuit_degrades_health_without_failing_it(client, sandbox_disabled, clean_cache):
    breaker = get_breaker("kubernetes")
    for _ in range(breaker.failure_threshold):
        with pytest.raises(KubernetesUnreachableError):
            breaker.call(_raise_unreachable)

    response = client.get("/health")

    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    circuit = body["checks"]["circuit_breakers"]
    assert circuit["status"] == "degraded"
    assert circuit["reason"] == "open: kubernetes"
    assert circuit["breakers"]["kubernetes"]["state"] == "open"
    assert circuit["breakers"]["kubernetes"]["retry_after"] > 0


def _raise_unreachable() -> None:
    raise KubernetesUnreachableError("list pods")


@pytest.mark.django_db
def test_unreachable_cluster_fails_health_when_the_sandbox_is_enabled(client, unreachable_cluster):
    response = client.get("/health")

    body = response.json()
    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    assert set(body) >= ENVELOPE_KEYS
    assert body["error"] == "SERVICE_UNAVAILABLE"
    assert body["details"] == {"unhealthy": ["kubernetes", "kubescape"]}
    assert body["request_id"] == response["X-Request-ID"]
    assert body["status"] == "unhealthy"
    for name in ("kubernetes", "kubescape"):
        assert body["checks"][name]["status"] == "unhealthy"
        assert body["checks"][name]["reason"] == "Kubernetes API unreachable"
    assert body["checks"]["database"]["status"] == "healthy"


@pytest.mark.django_db
def test_problem_json_keeps_the_health_state_under_its_own_name(client, unreachable_cluster):
    response = client.get("/health", headers={"Accept": "application/problem+json"})

    body = response.json()
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert body["status"] == 503  # RFC 9457's member
    assert body["health"] == "unhealthy"
    assert body["error"] == "SERVICE_UNAVAILABLE"
    assert body["checks"]["kubernetes"]["status"] == "unhealthy"


@pytest.mark.django_db
def test_readyz_checks_only_the_database(client, unreachable_cluster):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert set(response.json()["checks"]) == {"database"}


def test_livez_needs_no_dependency(client):
    response = client.get("/livez")
    assert response.status_code == 200
    assert response.json() == {
        "status": "alive",
        "service": "vexxy-premium",
        "request_id": response["X-Request-ID"],
    }


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_process_starts_with_the_database_down_and_says_so(tmp_path):
    """gunicorn boots against a closed database port; /health and /readyz answer 503 in JSON."""
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "DATABASE_URL": f"postgres://vexxy@127.0.0.1:{free_port()}/vexxy",
        "VEXXY_DATA_DIR": str(tmp_path),
        "CELERY_BROKER_URL": "filesystem://localhost/",
        "PYTHONUNBUFFERED": "1",
    }
    server = start_gunicorn(env)
    try:
        base = server.base_url
        status, body, headers = _get(base + "/livez")
        assert status == 200
        assert body["status"] == "alive"

        status, body, headers = _get(base + "/health")
        assert status == 503
        assert body["error"] == "SERVICE_UNAVAILABLE"
        assert "database" in body["details"]["unhealthy"]
        assert body["checks"]["database"] == {
            "status": "unhealthy",
            "required": True,
            "reason": "database unreachable",
            "vendor": "postgresql",
            "latency_ms": body["checks"]["database"]["latency_ms"],
        }
        assert body["request_id"] == headers["X-Request-ID"]

        status, body, _ = _get(base + "/readyz")
        assert status == 503
        assert body["details"] == {"unhealthy": ["database"]}
    finally:
        stop(server)


def _get(url: str) -> tuple[int, dict, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - local server
            return response.status, json.loads(response.read()), dict(response.headers)
    except HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def start_in_production(
    code: str, data_dir: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``code`` in a child with ENVIRONMENT=production and only ``env`` on top of that."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "vexxy.settings",
            "ENVIRONMENT": "production",
            "ALLOWED_HOSTS": "api.example.com",
            "VEXXY_DATA_DIR": str(data_dir),
            **env,
        },
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({}, "SECRET_KEY is unset, the development key, or shorter than 32 characters"),
        ({"SECRET_KEY": "x" * 40, "DEBUG": "true"}, "DEBUG is on"),
        ({"SECRET_KEY": "x" * 40, "ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS is empty"),
    ],
)
def test_production_refuses_unsafe_settings(env, problem, tmp_path):
    result = start_in_production("import django; django.setup()", tmp_path, env)
    assert result.returncode != 0
    assert "Refusing to start with ENVIRONMENT=production" in result.stderr
    assert problem in result.stderr


@pytest.mark.slow
def test_production_starts_with_safe_settings(tmp_path):
    code = "import django; django.setup(); print('ok')"
    result = start_in_production(code, tmp_path, {"SECRET_KEY": "s" * 50})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.fixture
def celery_not_eager():
    from vexxy.celery import app as celery_app

    saved = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = saved


@pytest.mark.django_db
def test_celery_health_reads_the_newest_worker_heartbeat(
    client, sandbox_disabled, clean_cache, celery_not_eager, monkeypatch
):
    from reliability import heartbeats
    from vexxy.celery import app as celery_app

    def no_broker(*args, **kwargs):
        raise AssertionError("a health request must not talk to the broker")

    monkeypatch.setattr(celery_app, "connection_for_read", no_broker)
    monkeypatch.setattr(celery_app.control, "ping", no_broker)
    heartbeats.record_heartbeat("worker@a", at=time.time() - 3)

    response = client.get("/health")

    celery = response.json()["checks"]["celery"]
    assert response.status_code == 200
    assert celery["status"] == "healthy"
    assert celery["worker"] == "worker@a"
    assert 3 <= celery["heartbeat_age_seconds"] < 30


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("age", "reason"),
    [(None, "no worker heartbeat recorded"), (95, "no worker heartbeat for 95 s")],
)
def test_no_recent_worker_heartbeat_fails_health(
    client, sandbox_disabled, clean_cache, celery_not_eager, age, reason
):
    from reliability import heartbeats

    if age is not None:
        heartbeats.record_heartbeat("worker@gone", at=time.time() - age)

    response = client.get("/health")

    body = response.json()
    assert response.status_code == 503
    assert body["error"] == "SERVICE_UNAVAILABLE"
    assert body["details"] == {"unhealthy": ["celery"]}
    celery = body["checks"]["celery"]
    assert celery["status"] == "unhealthy"
    assert celery["reason"] == reason
    if age is not None:
        assert celery["worker"] == "worker@gone"
        assert 95 <= celery["heartbeat_age_seconds"] < 120


def test_a_real_worker_records_heartbeats_for_health(child_env, clean_cache, celery_not_eager):
    from reliability.heartbeats import last_heartbeat
    from tests.support.processes import WORKER_ENV, start_celery_worker
    from tests.support.real_workers import wait_until

    hostname = f"heartbeat-{uuid.uuid4().hex[:8]}"
    process, _ = start_celery_worker(f"q-{hostname}", hostname, {**child_env, **WORKER_ENV}, REPO)
    try:
        first = wait_until(
            lambda: (beat := last_heartbeat()) and beat.worker.startswith(hostname) and beat,
            timeout=60,
            what="the worker's first heartbeat",
        )
        # Celery's heartbeat timer beats every 2 s: the record keeps moving while it lives.
        wait_until(lambda: last_heartbeat().at > first.at, timeout=60, what="a second heartbeat")
    finally:
        process.terminate()
        process.wait(timeout=60)
