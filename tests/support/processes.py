"""Child processes for tests: start one, and wait on its output instead of sleeping."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path


class ProcessOutput:
    """Collects a child's merged stdout/stderr lines; tests wait on a predicate."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 30) -> str:
        """The first line (already seen or still to come) matching ``predicate``."""
        seen = 0
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                if self._closed:
                    raise AssertionError("process exited first:\n" + self.text())
                if not self._changed.wait(max(0.0, deadline - time.monotonic())):
                    raise AssertionError(f"no matching line within {timeout}s:\n" + self.text())

    def text(self) -> str:
        return "\n".join(self.lines[-80:])


def start_process(
    argv: list[str], *, env: dict[str, str], cwd: Path
) -> tuple[subprocess.Popen, ProcessOutput]:
    process = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return process, ProcessOutput(process.stdout)


# A worker started by a test runs as in production, logging what the test waits for.
WORKER_ENV = {
    "ENVIRONMENT": "production",
    "SECRET_KEY": "t" * 40,
    "ALLOWED_HOSTS": "localhost",
    "LOG_LEVEL": "INFO",
}


def start_celery_worker(
    queue: str, hostname: str, env: dict[str, str], cwd: Path
) -> tuple[subprocess.Popen, ProcessOutput]:
    """A real solo ``celery worker`` of this service on ``queue``, once it says it is ready."""
    process, output = start_process(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "vexxy",
            "worker",
            "--pool",
            "solo",
            "-Q",
            queue,
            "--hostname",
            f"{hostname}@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        env=env,
        cwd=cwd,
    )
    output.wait_for(lambda line: f"{hostname}@" in line and "ready." in line, timeout=60)
    return process, output
