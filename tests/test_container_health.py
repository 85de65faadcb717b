"""The image's one health check fits each role: web, worker and beat (vexxy/container_health.py).

The role comes from a process's command line, so the checks are run against real
processes (gunicorn, a Celery worker, Celery beat) with ``--pid``, as
``python -m vexxy.container_health`` in their environment, the way Docker runs it.
"""

from __future__ import annotations

import http.server
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from celery.schedules import crontab, schedule

from tests.conftest import free_port
from tests.support.live_server import stop
from tests.support.make_run import local_env, wait_until
from tests.support.processes import WORKER_ENV, Lines, start_celery_worker
from vexxy.container_health import (
    beat_max_age,
    beat_schedule,
    check_beat,
    check_web,
    check_worker,
    livez_address,
    main,
    read_argv,
    role_of,
    worker_node,
)

REPO = Path(__file__).resolve().parent.parent
HOST = socket.gethostname()


def run_check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vexxy.container_health", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- which role ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "role"),
    [
        (["gunicorn", "vexxy.wsgi", "--bind", "0.0.0.0:8000"], "web"),
        (["/opt/venv/bin/python", "/opt/venv/bin/gunicorn", "vexxy.wsgi"], "web"),
        (["python", "-m", "gunicorn", "vexxy.wsgi"], "web"),
        (["/opt/venv/bin/python", "/opt/venv/bin/celery", "-A", "vexxy", "worker"], "worker"),
        (["celery", "-A", "vexxy", "worker", "-B"], "worker"),
        (["python", "-m", "celery", "-A", "vexxy", "beat", "--loglevel", "INFO"], "beat"),
        (["/sbin/docker-init", "--", "celery", "-A", "vexxy", "beat"], "beat"),
        (["celery", "-A", "vexxy", "inspect", "ping"], None),
        (["python", "manage.py", "shell"], None),
    ],
)
def test_the_role_is_read_from_the_command_line(argv, role):
    assert role_of(argv) == role


@pytest.fixture
def idle_pid():
    """A process of no role of ours: ``python -c ...``."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; print(1, flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    # Until it has exec'd, /proc shows the parent's command line, or none.
    assert process.stdout.readline() == "1\n"
    yield process.pid
    process.stdin.close()
    process.wait(timeout=30)


def test_a_process_of_no_known_role_is_unhealthy_and_says_what_to_set(
    idle_pid, capsys, monkeypatch
):
    monkeypatch.delenv("VEXXY_ROLE", raising=False)
    assert main(["--pid", str(idle_pid)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"unknown role: unhealthy: cannot tell the role of '{sys.executable} -c")
    assert out.rstrip().endswith(": set VEXXY_ROLE")


def test_vexxy_role_overrides_the_command_line(idle_pid, capsys, monkeypatch):
    port = free_port()  # nothing listens there
    monkeypatch.setenv("VEXXY_ROLE", "web")
    monkeypatch.setenv("PORT", str(port))
    assert main(["--pid", str(idle_pid)]) == 1
    assert capsys.readouterr().out.startswith(f"web: unhealthy: GET /livez on 127.0.0.1:{port}:")
    monkeypatch.setenv("VEXXY_ROLE", "cron")
    assert main(["--pid", str(idle_pid)]) == 1
    assert "VEXXY_ROLE is 'cron', not one of web, worker, beat" in capsys.readouterr().out


# -- web -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "environ", "address"),
    [
        (["gunicorn", "x", "--bind", "0.0.0.0:8000"], {}, ("127.0.0.1", 8000)),
        (["gunicorn", "x", "-b", "[::]:9000"], {}, ("::1", 9000)),
        (["gunicorn", "x", "--bind=10.0.0.5:8080"], {}, ("10.0.0.5", 8080)),
        (["gunicorn", "x", "-b127.0.0.1:7000", "-b", "0.0.0.0:1"], {}, ("127.0.0.1", 7000)),
        (["gunicorn", "x"], {"PORT": "5000"}, ("127.0.0.1", 5000)),
        (["gunicorn", "x"], {}, ("127.0.0.1", 8000)),
    ],
)
def test_the_web_check_asks_where_gunicorn_binds(argv, environ, address):
    assert livez_address(argv, environ) == address


def test_a_unix_socket_bind_has_no_address_to_ask():
    with pytest.raises(ValueError, match=re.escape("unix:/run/app.sock")):
        livez_address(["gunicorn", "x", "--bind", "unix:/run/app.sock"], {})


@pytest.fixture
def answering():
    """An HTTP server on 127.0.0.1 answering every GET with ``status`` and noting its Host."""
    seen: dict[str, object] = {"status": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen["host"], seen["path"] = self.headers["Host"], self.path
            self.send_response(int(seen["status"]))
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def test_the_web_check_wants_a_200_from_livez_with_host_localhost(answering):
    port, seen = answering
    assert check_web("127.0.0.1", port).healthy
    assert (seen["host"], seen["path"]) == ("localhost", "/livez")
    seen["status"] = 503
    verdict = check_web("127.0.0.1", port)
    assert not verdict.healthy
    assert f"GET /livez on 127.0.0.1:{port} answered 503" in verdict.reason


def test_the_web_check_follows_a_real_gunicorn(live_gunicorn, child_env):
    port = int(live_gunicorn.base_url.rsplit(":", 1)[1])
    result = run_check(child_env, "--pid", str(live_gunicorn.master_pid))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"web: healthy: GET /livez on 127.0.0.1:{port} answered 200")
    stop(live_gunicorn)
    verdict = check_web("127.0.0.1", port)
    assert not verdict.healthy
    assert "refused" in verdict.reason


# -- worker ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "node"),
    [
        (["celery", "-A", "vexxy", "worker", "--hostname", "worker@%h"], f"worker@{HOST}"),
        (["celery", "-A", "vexxy", "worker", "-n", "w1@example"], "w1@example"),
        (["celery", "-A", "vexxy", "worker", "--hostname=w2@%h"], f"w2@{HOST}"),
        (["celery", "-A", "vexxy", "worker"], f"celery@{HOST}"),
    ],
)
def test_the_worker_node_name_is_expanded_as_celery_does(argv, node):
    assert worker_node(argv) == node


@pytest.mark.django_db
def test_the_worker_check_reads_this_workers_own_heartbeat(clean_cache):
    from reliability.heartbeats import record_heartbeat

    verdict = check_worker("worker@here")
    assert (verdict.healthy, verdict.reason) == (
        False,
        "no heartbeat of worker@here recorded in the cache",
    )
    record_heartbeat("worker@here", at=time.time() - 2)
    verdict = check_worker("worker@here")
    assert verdict.healthy
    assert re.fullmatch(r"heartbeat of worker@here 2\.\d s ago", verdict.reason)
    # Another worker beating does not make a stopped one healthy.
    record_heartbeat("worker@here", at=time.time() - 95)
    record_heartbeat("worker@there")
    verdict = check_worker("worker@here")  # HEALTH_CELERY_STALE_SECONDS: 30
    assert not verdict.healthy
    assert verdict.reason == "last heartbeat of worker@here 95 s ago, over 30 s"


def test_the_worker_check_follows_a_real_worker(child_env, clean_cache):
    from reliability.heartbeats import last_heartbeat

    hostname = f"health-{uuid.uuid4().hex[:8]}"
    env = {**child_env, **WORKER_ENV}
    process, _ = start_celery_worker(f"q-{hostname}", hostname, env, REPO)
    try:
        node = worker_node(read_argv(process.pid))
        assert node == f"{hostname}@{HOST}"
        wait_until(lambda: last_heartbeat(node) is not None, 60, "its heartbeat")
        result = run_check(env, "--pid", str(process.pid))  # in a Python of its own, as Docker
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith(f"worker: healthy: heartbeat of {node} ")
    finally:
        process.terminate()
        process.wait(timeout=60)
    # Stopped, it beats no more: the check fails once the last beat is older than the limit.
    wait_until(lambda: not check_worker(node, max_age=3).healthy, 60, "a stale heartbeat")
    assert f"last heartbeat of {node} " in check_worker(node, max_age=3).reason


# -- beat ------------------------------------------------------------------------------


def test_the_beat_file_may_age_by_celerys_sync_interval_and_two_of_the_shortest_schedule():
    entries = {
        "a": {"schedule": 60.0},
        "b": {"schedule": timedelta(minutes=5)},
        "c": {"schedule": schedule(run_every=timedelta(seconds=90))},
        "d": {"schedule": crontab(minute="*/5")},  # no fixed interval: not counted
    }
    assert beat_max_age(entries) == 180 + 2 * 60 + 60
    assert beat_max_age({"d": entries["d"]}) == 180 + 2 * 300 + 60


def test_the_beat_schedule_is_its_option_or_the_setting_relative_to_its_folder(settings):
    settings.CELERY_BEAT_SCHEDULE_FILENAME = "/data/celerybeat-schedule"
    cwd = Path("/app")
    assert beat_schedule(["celery", "-A", "vexxy", "beat"], cwd) == Path(
        "/data/celerybeat-schedule"
    )
    assert beat_schedule(["celery", "beat", "-s", "var/sched"], cwd) == Path("/app/var/sched")
    assert beat_schedule(["celery", "beat", "--schedule=/s/x"], cwd) == Path("/s/x")


@pytest.mark.slow
def test_the_beat_check_follows_a_real_beats_schedule_file(tmp_path):
    env = {**local_env(tmp_path), "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "vexxy", "beat", "--loglevel", "INFO"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = Lines(process.stdout)
    try:
        output.wait_for(lambda line: "beat: Starting..." in line, timeout=120)
        wait_until(lambda: list(tmp_path.glob("celerybeat-schedule*")), 60, "its schedule file")
        result = run_check(env, "--pid", str(process.pid))
        assert result.returncode == 0, result.stdout + result.stderr
        schedule_path = tmp_path / "celerybeat-schedule"
        assert result.stdout.startswith(f"beat: healthy: schedule {schedule_path} written ")
        # A beat that no longer ticks stops writing it.
        an_hour_ago = time.time() - 3600
        for path in tmp_path.glob("celerybeat-schedule*"):
            os.utime(path, (an_hour_ago, an_hour_ago))
        result = run_check(env, "--pid", str(process.pid))
        assert result.returncode == 1
        assert re.search(r"written 36\d\d s ago, over \d+ s", result.stdout), result.stdout
    finally:
        process.terminate()
        process.wait(timeout=60)
    verdict = check_beat(process.pid, ["celery", "beat"], max_age=None)
    assert (verdict.healthy, verdict.reason) == (False, f"process {process.pid} is not running")


# -- the image -------------------------------------------------------------------------


def dockerfile() -> tuple[list[str], str]:
    """The Dockerfile's instructions (continuation lines joined) and its ARG defaults applied."""
    text = (REPO / "Dockerfile").read_text()
    instructions = [
        line.strip()
        for line in re.sub(r"\\\n\s*", " ", text).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", "\n".join(instructions), re.MULTILINE))
    expanded = [re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], line) for line in instructions]
    return expanded, text


def test_every_stage_starts_from_one_python_image_pinned_to_a_patch_version():
    instructions, _ = dockerfile()
    images = {line.split()[1] for line in instructions if line.startswith("FROM ")}
    assert len(images) == 1, images
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", images.pop())


def test_the_healthcheck_is_the_role_aware_check():
    instructions, _ = dockerfile()
    checks = [line for line in instructions if line.startswith("HEALTHCHECK ")]
    assert len(checks) == 1
    assert checks[0].endswith('CMD ["python", "-m", "vexxy.container_health"]')
    assert "livez" not in checks[0]
