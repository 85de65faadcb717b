"""``make run``'s supervisor (vexxy/run_local.py) started by tests, and what it reports.

Its output is one stream of prefixed lines (stdout and stderr of every child merged), read
by ``Lines`` (tests/support/processes.py).

The supervisor prints "started NAME (pid N)" for each child and then, as it reaps it,
"NAME (pid N) exited with status S" or "... was killed by SIGNAME": its own ``waitpid``
results, so the tests read how every child ended (and tell a SIGKILL apart) from them.
Children run in sessions of their own; ``reap_leftovers`` kills any a failed test left.
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from tests.support.processes import Lines

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
STARTED = re.compile(r"\| started (\w+) \(pid (\d+)\)")
ENDED = re.compile(r"\| (\w+) \(pid (\d+)\) (exited with status -?\d+|was killed by SIG\w+)")
# Settings a CI run points at shared servers (`make run`'s processes get the local defaults),
# and those of an outer make (`make test`), whose jobserver descriptors are not inherited.
NOT_INHERITED = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
)


def local_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """``make run``'s environment on a data folder of the test's own (SQLite, filesystem broker)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in NOT_INHERITED and not key.startswith(("PYTEST_", "DJANGO_"))
    }
    env.update(
        VEXXY_DATA_DIR=str(data_dir),
        HOST="127.0.0.1",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
        SANDBOX_ENABLED="false",
        LOG_LEVEL="INFO",
        # Two web workers rather than 2 per core + 1: the same stop, less load on the host.
        WEB_CONCURRENCY="2",
        # gunicorn's control socket goes to $XDG_RUNTIME_DIR, not one shared under $HOME.
        XDG_RUNTIME_DIR=str(data_dir),
        **extra,
    )
    return env


def children(lines: list[str]) -> dict[str, int]:
    return {m[1]: int(m[2]) for line in lines if (m := STARTED.search(line))}


def endings(lines: list[str]) -> dict[str, str]:
    """name -> "exited with status S" or "was killed by SIGNAME", as the supervisor saw it."""
    return {m[1]: m[3] for line in lines if (m := ENDED.search(line))}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Started(dict[str, int]):
    """What a test started: supervisors, and their children by name (name -> pid)."""

    def __init__(self) -> None:
        super().__init__()
        self.supervisors: list[subprocess.Popen] = []

    def stop(self, timeout: float = 60) -> list[str]:
        """Stop what still runs (a failed test's); the names of children that outlived their
        supervisor. A supervisor gets SIGTERM and stops its children; a child left, SIGTERM
        and then SIGKILL to its group — its supervisor, under make on a terminal, follows."""
        for supervisor in self.supervisors:
            if supervisor.poll() is None:
                supervisor.terminate()
                try:
                    supervisor.wait(timeout)
                except subprocess.TimeoutExpired:
                    supervisor.kill()
        left = [name for name, pid in self.items() if alive(pid)]
        for name in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self[name], signal.SIGTERM)
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not any(alive(self[name]) for name in left), timeout, "stop")
        for name in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self[name], signal.SIGKILL)
        return left


def start_supervisor(
    env: dict[str, str], *args: str, stdout: int | IO[str] = subprocess.PIPE
) -> subprocess.Popen:
    """``python -m vexxy.run_local ARGS`` in a session of its own (no terminal to take)."""
    return subprocess.Popen(
        [sys.executable, "-m", "vexxy.run_local", *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def start_tee(log: Path) -> subprocess.Popen:
    """A real ``tee``, to be the only reader of a supervisor's output."""
    return subprocess.Popen(
        ["tee", str(log)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll another process's state (no event to wait on) until true or the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.2)  # bounded by the deadline; the other process needs time to act


class Terminal:
    """A command on a pseudo-terminal of its own, as typed at a shell prompt.

    The command leads a new session with the terminal as its controlling terminal, in the
    foreground: writing "\\x03" makes the kernel send SIGINT to the foreground process
    group, exactly as a Ctrl-C typed by a person does.
    """

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: exec at once (only async-signal-safe work after a fork)
            try:
                os.chdir(cwd)
                os.execvpe(argv[0], argv, env)  # noqa: S606 - the test's own command
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.output = Lines(_lines(fd))
        self.status: int | None = None
        self._exited = threading.Event()
        threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self) -> None:
        self.status = os.waitpid(self.pid, 0)[1]
        self._exited.set()

    def ctrl_c(self) -> None:
        os.write(self.fd, b"\x03")

    def wait(self, timeout: float) -> int:
        """The command's wait status, once it exited and all it wrote has been read."""
        if not (self._exited.wait(timeout) and self.output.closed.wait(timeout)):
            raise AssertionError(f"still running after {timeout} s:\n{self.output.text()}")
        assert self.status is not None
        return self.status

    def close(self) -> None:
        if not self._exited.is_set():
            os.kill(self.pid, signal.SIGKILL)
            self._exited.wait(30)
        os.close(self.fd)


def _lines(fd: int) -> Iterator[str]:
    pending = b""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the last process holding the terminal closed it
            data = b""
        if not data:
            break
        *lines, pending = (pending + data).split(b"\n")
        yield from (line.decode(errors="replace").rstrip("\r") for line in lines)
    if pending:
        yield pending.decode(errors="replace")
