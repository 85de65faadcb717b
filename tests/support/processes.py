"""Child processes for tests: start one, and wait on its output instead of sleeping."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path


class ProcessOutput:
    """A child's log: the lines of its stderr, where the service logs; tests wait on a predicate.

    Its stdout (a command's result, celery's banner) is collected apart in ``stdout``,
    so that a log line is never looked for, nor found, there.
    """

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.stdout: list[str] = []
        self._changed = threading.Condition()
        self._closed = False
        for stream, lines, closes in (
            (process.stderr, self.lines, True),
            (process.stdout, self.stdout, False),
        ):
            threading.Thread(target=self._pump, args=(stream, lines, closes), daemon=True).start()

    def _pump(self, stream, lines: list[str], closes: bool) -> None:
        for line in stream:
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        if closes:
            with self._changed:
                self._closed = True
                self._changed.notify_all()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 30) -> str:
        """The first log line (already seen or still to come) matching ``predicate``."""
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
        """The last lines of both streams, for a failure's message."""
        return "\n".join(["stderr:", *self.lines[-80:], "stdout:", *self.stdout[-20:]])


def start_process(
    argv: list[str], *, env: dict[str, str], cwd: Path
) -> tuple[subprocess.Popen, ProcessOutput]:
    process = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return process, ProcessOutput(process)


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
