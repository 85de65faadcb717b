"""Child processes for tests: start one, and wait on its output instead of sleeping."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path


class Lines:
    """The lines read from a stream by a thread; tests wait on a predicate, not a sleep."""

    def __init__(self, stream: Iterable[str]) -> None:
        self.lines: list[str] = []
        self.closed = threading.Event()  # set once the stream ended and every line is stored
        self._changed = threading.Condition()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: Iterable[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.closed.set()
            self._changed.notify_all()

    def wait_for(
        self,
        predicate: Callable[[str], bool],
        timeout: float = 30,
        explain: Callable[[], str] | None = None,
    ) -> str:
        """The first line, already read or still to come, that matches ``predicate``."""
        explain = explain or self.text
        seen = 0
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                if self.closed.is_set():
                    raise AssertionError("the stream ended first:\n" + explain())
                if not self._changed.wait(max(0.0, deadline - time.monotonic())):
                    raise AssertionError(f"no matching line within {timeout} s:\n" + explain())

    def text(self) -> str:
        return "\n".join(self.lines[-80:])


class ProcessOutput:
    """A child's log: the lines of its stderr, where the service logs; tests wait on a predicate.

    Its stdout (a command's result, celery's banner) is collected apart in ``stdout``,
    so that a log line is never looked for, nor found, there.
    """

    def __init__(self, process: subprocess.Popen) -> None:
        self._log = Lines(process.stderr)
        self._out = Lines(process.stdout)

    @property
    def lines(self) -> list[str]:
        return self._log.lines

    @property
    def stdout(self) -> list[str]:
        return self._out.lines

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 30) -> str:
        """The first log line (already seen or still to come) matching ``predicate``."""
        return self._log.wait_for(predicate, timeout, explain=self.text)

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
    queue: str,
    hostname: str,
    env: dict[str, str],
    cwd: Path,
    *,
    pool: str = "solo",
    concurrency: int = 1,
) -> tuple[subprocess.Popen, ProcessOutput]:
    """A real ``celery worker`` of this service on ``queue``, once it says it is ready.

    ``pool="threads"`` runs ``concurrency`` tasks in one process, which a SIGKILL takes
    down whole (a prefork pool's children would outlive their parent for a while).
    """
    process, output = start_process(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "vexxy",
            "worker",
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
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
