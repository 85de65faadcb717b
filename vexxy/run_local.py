"""``make run``: the Procfile's processes in one terminal, stopped cleanly by Ctrl-C or SIGTERM.

honcho ran them before. It is replaced because honcho 2.0 cannot be configured out of
what went wrong (see its ``manager.py``):

* it sends SIGKILL 5 s after SIGTERM (``KILL_WAIT``, a constant), and sends both to each
  child's whole process group, so Celery's pool processes and gunicorn's workers are
  signalled alongside their parents instead of being stopped by them;
* its SIGINT handler first prints "SIGINT received": under ``make run | tee log`` the
  Ctrl-C also ends ``tee``, the print raises ``BrokenPipeError`` before any child is
  signalled, and the children (each in a session of its own) run on;
* it leaves ``make`` in the terminal's foreground process group, so make gets the Ctrl-C
  too and reports "*** [run] Interrupt" (honcho itself then exits 130);
* it starts every process before gunicorn finds the port taken.

This one checks the port first (vexxy/ports.py) and starts nothing if it is taken. It
starts each Procfile line as ``sh -c 'exec LINE'`` in a session of its own, so that a
signal reaches the program itself and never its pool directly. While it runs it is the
terminal's foreground process group, so that Ctrl-C reaches it alone, not make (nor
``tee``). On SIGINT, SIGTERM, SIGHUP or SIGQUIT it sends each child SIGTERM (Celery's warm
shutdown, gunicorn's graceful stop), waits up to ``--stop-timeout`` seconds, and only then
sends SIGKILL, saying so. It reports how each child exited, stops writing (and stops the
children) once its output has no reader, and exits 0 when every child stopped cleanly.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import select
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vexxy.ports import refusal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
SYSTEM = "system"
DEFAULT_STOP_TIMEOUT = 60.0
# After SIGKILL, how long to wait for the kernel to reap a child before giving up on it.
REAP_AFTER_KILL = 10.0
READ_SIZE = 65536
NAME = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Entry:
    name: str
    command: str


def read_procfile(path: Path) -> list[Entry]:
    entries: list[Entry] = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, command = (part.strip() for part in line.partition(":"))
        if not colon or not NAME.fullmatch(name) or not command:
            raise ValueError(f"{path}:{number}: expected 'name: command', found {raw!r}")
        if any(entry.name == name for entry in entries):
            raise ValueError(f"{path}:{number}: {name!r} is declared twice")
        entries.append(Entry(name, command))
    if not entries:
        raise ValueError(f"{path}: declares no process")
    return entries


class Output:
    """Lines prefixed with the time and the process name, like honcho's; silent once unread."""

    def __init__(self, fd: int, width: int) -> None:
        self.fd, self.width, self.broken = fd, width, False

    def line(self, name: str, text: bytes) -> None:
        if not self.broken:
            prefix = f"{time.strftime('%H:%M:%S')} {name.ljust(self.width)} | ".encode()
            self._write(prefix + text.rstrip(b"\r") + b"\n")

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:  # an inherited non-blocking descriptor
                select.select([], [self.fd], [])
            except OSError:  # EPIPE: the reader is gone (`| tee` at Ctrl-C); EIO: no terminal
                self.broken = True
                return


@dataclass
class Child:
    entry: Entry
    process: subprocess.Popen
    pending: bytes = b""
    reading: bool = True
    returncode: int | None = None
    abandoned: bool = False

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.returncode is None and not self.abandoned

    def label(self) -> str:
        return f"{self.name} (pid {self.pid})"


def describe(returncode: int) -> str:
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        return f"was killed by {signal.Signals(-returncode).name}"
    except ValueError:  # a real-time signal, which has no name
        return f"was killed by signal {-returncode}"


class Supervisor:
    def __init__(
        self, entries: list[Entry], env: dict[str, str], stop_timeout: float, output: Output
    ) -> None:
        self.entries, self.env, self.stop_timeout, self.output = entries, env, stop_timeout, output
        self.children: list[Child] = []
        self.selector = selectors.DefaultSelector()
        self.received: list[int] = []  # appended to by the signal handler, read by the loop
        self.stopping_since: float | None = None
        self.deadline: float | None = None
        self.killed = False
        self.failure: str | None = None  # a child that exited before any stop was asked

    def run(self) -> int:
        with self._signals_wake_the_loop():
            try:
                return self._supervise()
            except BaseException:
                # A bug here must not orphan the children: they stop on their own, warm.
                for child in self.children:
                    if child.running:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(child.pid, signal.SIGTERM)
                raise

    def _supervise(self) -> int:
        for entry in self.entries:
            if self.received:  # stopped while starting: start no more
                break
            try:
                self._start(entry)
            except OSError as error:
                self._say(f"cannot start {entry.name}: {error}")
                self.failure = f"{entry.name} could not start"
                self._stop(self.failure)
                break
        while True:
            self._handle_signals()
            self._reap()
            if self.output.broken and self.stopping_since is None:
                self._stop("output has no reader left")
            self._enforce_deadline()
            if not any(child.running for child in self.children):
                return self._finish()
            # A signal after the checks above still ends this wait: it writes to the pipe.
            for key, _ in self.selector.select(self._timeout()):
                if key.data is None:
                    _drain(key.fd)
                else:
                    self._read(key.data)

    @contextlib.contextmanager
    def _signals_wake_the_loop(self) -> Iterator[None]:
        """Handlers only record; the wakeup pipe ends the loop's ``select``; children get
        default dispositions back at exec (handlers, unlike SIG_IGN, are not inherited)."""
        wake_read, wake_write = os.pipe()
        for fd in (wake_read, wake_write):
            os.set_blocking(fd, False)
        self.selector.register(wake_read, selectors.EVENT_READ, None)
        previous_fd = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        handled = (*STOP_SIGNALS, signal.SIGTSTP, signal.SIGCHLD)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in handled}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(previous_fd)
            for child in self.children:
                if child.reading:
                    self._close(child)
            self.selector.close()
            os.close(wake_read)
            os.close(wake_write)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.received.append(signum)

    def _say(self, text: str) -> None:
        self.output.line(SYSTEM, text.encode())

    def _start(self, entry: Entry) -> None:
        process = subprocess.Popen(  # noqa: S603 - the project's own Procfile
            ["/bin/sh", "-c", f"exec {entry.command}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        child = Child(entry, process)
        self.children.append(child)
        os.set_blocking(process.stdout.fileno(), False)
        self.selector.register(process.stdout, selectors.EVENT_READ, child)
        self._say(f"started {child.label()}: {entry.command}")

    def _read(self, child: Child, *, drain: bool = False) -> None:
        while child.reading:
            try:
                data = os.read(child.process.stdout.fileno(), READ_SIZE)
            except BlockingIOError:
                return
            if not data:
                self._close(child)
                return
            *lines, child.pending = (child.pending + data).split(b"\n")
            if len(child.pending) > READ_SIZE:  # a line without end: print it in parts
                lines.append(child.pending)
                child.pending = b""
            for line in lines:
                self.output.line(child.name, line)
            if not drain:
                return

    def _close(self, child: Child) -> None:
        if child.pending:
            self.output.line(child.name, child.pending)
            child.pending = b""
        self.selector.unregister(child.process.stdout)
        child.process.stdout.close()
        child.reading = False

    def _handle_signals(self) -> None:
        while self.received:
            signum = self.received.pop(0)
            if signum == signal.SIGCHLD:
                continue
            if signum == signal.SIGTSTP:
                self._say("Ctrl-Z does not suspend these processes; Ctrl-C stops them")
            elif self.stopping_since is None:
                self._stop(f"{signal.Signals(signum).name} received")
            else:
                waiting = ", ".join(child.label() for child in self.children if child.running)
                left = max((self.deadline or 0) - time.monotonic(), 0)
                self._say(
                    f"{signal.Signals(signum).name} received: still waiting for {waiting}"
                    f" ({left:.0f} s left before SIGKILL)"
                )

    def _reap(self) -> None:
        for child in self.children:
            if not child.running or (returncode := child.process.poll()) is None:
                continue
            self._read(child, drain=True)  # what it wrote before exiting, then its status
            child.returncode = returncode
            after = self._since_stop()
            self._say(f"{child.label()} {describe(returncode)}{after}")
            if self.stopping_since is None:
                self.failure = f"{child.name} {describe(returncode)} on its own"
                self._stop(f"{child.name} exited")

    def _stop(self, reason: str) -> None:
        self.stopping_since = time.monotonic()
        self.deadline = self.stopping_since + self.stop_timeout
        running = [child for child in self.children if child.running]
        if running:
            self._say(
                f"{reason}: SIGTERM to {', '.join(child.label() for child in running)};"
                f" SIGKILL after {self.stop_timeout:g} s to any still running"
            )
        for child in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)

    def _since_stop(self) -> str:
        if self.stopping_since is None:
            return ""
        return f", {time.monotonic() - self.stopping_since:.1f} s after the stop"

    def _timeout(self) -> float | None:
        return None if self.deadline is None else max(self.deadline - time.monotonic(), 0.0)

    def _enforce_deadline(self) -> None:
        if self.deadline is None or time.monotonic() < self.deadline:
            return
        running = [child for child in self.children if child.running]
        if not self.killed:
            self.killed = bool(running)
            for child in running:
                self._say(
                    f"{child.label()} did not stop within {self.stop_timeout:g} s:"
                    " SIGKILL to its process group"
                )
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)
            self.deadline = time.monotonic() + REAP_AFTER_KILL
            return
        for child in running:
            self._say(f"{child.label()} is still running after SIGKILL; leaving it")
            child.abandoned = True

    def _finish(self) -> int:
        unclean = [
            child.label()
            for child in self.children
            if child.abandoned or child.returncode not in (0, -signal.SIGTERM)
        ]
        if self.failure or unclean:
            self._say(f"stopped: {self.failure or 'not cleanly: ' + ', '.join(unclean)}")
            return 1
        took = time.monotonic() - (self.stopping_since or time.monotonic())
        self._say(f"all stopped cleanly in {took:.1f} s")
        return 0


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 512):
            pass


@contextlib.contextmanager
def foreground_process_group() -> Iterator[None]:
    """Make this process the terminal's foreground process group while it runs.

    Then the terminal's Ctrl-C (and Ctrl-\\, Ctrl-Z) reach this process alone: not make,
    which would report the interrupted recipe as an error, nor the other commands of a
    pipeline such as ``| tee log``, which would die before the shutdown is logged. The
    children are in sessions of their own and get nothing from the terminal. Nothing
    changes without a controlling terminal, or when this process is not in the foreground,
    or already leads its own process group (started by a shell directly).
    """
    try:
        tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        yield
        return
    try:
        previous = os.getpgrp()
        if os.tcgetpgrp(tty) != previous or previous == os.getpid():
            yield
            return
        os.setpgid(0, 0)
        _set_foreground(tty, os.getpid())
        try:
            yield
        finally:
            _set_foreground(tty, previous)
    finally:
        os.close(tty)


def _set_foreground(tty: int, pgrp: int) -> None:
    # A background process group that asks for the terminal gets SIGTTOU unless blocked.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
    try:
        with contextlib.suppress(OSError):  # the previous group may be gone
            os.tcsetpgrp(tty, pgrp)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m vexxy.run_local",
        description="Run the Procfile's processes; Ctrl-C or SIGTERM stops them all cleanly.",
    )
    parser.add_argument("--procfile", type=Path, default=Path("Procfile"))
    parser.add_argument("--host", default=os.environ.get("HOST") or "127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=DEFAULT_STOP_TIMEOUT,
        help="seconds between SIGTERM and SIGKILL (default: %(default)g)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        entries = read_procfile(args.procfile)
    except (OSError, ValueError) as error:
        print(f"run_local: {error}", file=sys.stderr)
        return 2
    message = refusal(args.host, args.port)
    if message:
        print(f"run_local: {message}", file=sys.stderr)
        return 1
    env = {**os.environ, "HOST": args.host, "PORT": str(args.port)}
    env.setdefault("PYTHONUNBUFFERED", "1")  # children's lines arrive as they are written
    width = max(len(SYSTEM), *(len(entry.name) for entry in entries))
    sys.stdout.flush()
    with foreground_process_group():
        return Supervisor(entries, env, args.stop_timeout, Output(1, width)).run()


if __name__ == "__main__":
    sys.exit(main())
