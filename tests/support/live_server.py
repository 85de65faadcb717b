"""A real gunicorn serving this test's database: ``live_gunicorn`` for tests that speak HTTP."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.support.processes import ProcessOutput, start_process

REPO = Path(__file__).resolve().parents[2]

LIVE_SERVER_ENV = {
    "SANDBOX_ENABLED": "false",
    "API_RATE_LIMIT": "1000000/minute",
    "LOG_LEVEL": "WARNING",
}


@dataclass
class LiveServer:
    base_url: str
    process: subprocess.Popen
    output: ProcessOutput

    @property
    def master_pid(self) -> int:
        return self.process.pid

    def worker_pids(self) -> list[int]:
        """The master's children: its workers (from /proc, no psutil)."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.master_pid:
                pids.append(int(stat.parent.name))
        return sorted(pids)


def start_gunicorn(
    env: dict[str, str], *extra: str, overrides: dict[str, str] | None = None
) -> LiveServer:
    """Later ``extra`` options win over the defaults below; ``overrides`` over LIVE_SERVER_ENV."""
    port = free_port()
    process, output = start_process(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "vexxy.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--worker-class",
            "sync",
            "--timeout",
            "60",
            *extra,
        ],
        env={**env, **LIVE_SERVER_ENV, **(overrides or {})},
        cwd=REPO,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", process, output)
    try:
        # The master listens before it forks: the request waits in the backlog for the worker.
        output.wait_for(lambda line: "Listening at" in line, timeout=60)
        with urllib.request.urlopen(server.base_url + "/livez", timeout=60) as response:  # noqa: S310
            assert response.status == 200
    except BaseException:
        stop(server)
        raise
    return server


def stop(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)


@pytest.fixture
def live_gunicorn(child_env: dict[str, str]) -> Iterator[LiveServer]:
    """gunicorn (one sync worker) on a free port, sharing this test's database and cache."""
    server = start_gunicorn(child_env)
    try:
        yield server
    finally:
        stop(server)
