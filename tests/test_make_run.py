"""``make run`` stops cleanly: Ctrl-C on a terminal, SIGINT, SIGTERM, piped output, busy port.

The first tests drive the supervisor (vexxy/run_local.py) with stand-in processes
(tests/support/procfile_child.py), to pin down what it does and reports. The slow ones run
the real Procfile — gunicorn, a Celery worker and beat on a data folder of their own —
directly and through ``make run`` on a pseudo-terminal, where a "\\x03" is a real Ctrl-C.
How each child ended is the supervisor's own ``waitpid`` result ("exited with status 0",
"was killed by SIGKILL"), which the first tests show it tells apart.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.support.make_run import (
    REPO,
    VENV_BIN,
    Started,
    Terminal,
    alive,
    children,
    endings,
    local_env,
    start_supervisor,
    start_tee,
    wait_until,
)
from tests.support.processes import Lines
from vexxy import ports
from vexxy.run_local import read_procfile

CHILD = REPO / "tests" / "support" / "procfile_child.py"
# The supervisor's SIGKILL deadline in the real runs: far above the measured stops (< 15 s)
# so that only a process that does not stop is killed. Every bound below derives from it.
STOP_TIMEOUT = 120
START_TIMEOUT = 240  # three Django processes starting on a slow, shared host
CLEAN = "exited with status 0"


def procfile(tmp_path: Path, **behaviours: str) -> Path:
    path = tmp_path / "Procfile"
    lines = [
        f"{name}: {sys.executable} {CHILD} {name} {behaviour} {tmp_path / (name + '.started')}"
        for name, behaviour in behaviours.items()
    ]
    path.write_text("# stand-ins\n" + "\n".join(lines) + "\n")
    return path


def supervise(
    started: Started, tmp_path: Path, *args: str, stdout=subprocess.PIPE, **behaviours: str
):
    env = local_env(tmp_path)
    path = procfile(tmp_path, **behaviours)
    process = start_supervisor(env, "--procfile", str(path), *args, stdout=stdout)
    started.supervisors.append(process)
    return process, Lines(process.stdout) if stdout == subprocess.PIPE else None


def finish(process: subprocess.Popen, output: Lines, timeout: float) -> int:
    """The supervisor's exit status, once the last line it wrote has been read."""
    returncode = process.wait(timeout=timeout)
    assert output.closed.wait(30), "its output is still open"
    return returncode


def stand_ins_ready(output: Lines, *names: str) -> None:
    """Each has set its SIGTERM disposition: a signal from now on meets the intended one."""
    for name in names:
        output.wait_for(lambda line, name=name: line.endswith(f"| {name} ready"))


@pytest.fixture
def leftovers():
    """What a test started; a child still running at the end fails it (and is stopped)."""
    started = Started()
    yield started
    assert started.stop() == [], "children outlived their supervisor"


# -- the supervisor, with stand-in processes ---------------------------------------------


def test_the_procfile_declares_web_worker_and_beat():
    entries = read_procfile(REPO / "Procfile")
    assert [entry.name for entry in entries] == ["web", "worker", "beat"]
    assert entries[0].command.startswith("gunicorn vexxy.wsgi ")


@pytest.mark.parametrize(
    "text",
    ["web gunicorn\n", "web:\n", "we b: x\n", "a: x\na: y\n", "# nothing\n"],
    ids=["no-colon", "no-command", "bad-name", "twice", "empty"],
)
def test_a_malformed_procfile_is_refused(tmp_path, text):
    path = tmp_path / "Procfile"
    path.write_text(text)
    with pytest.raises(ValueError, match="Procfile"):
        read_procfile(path)


@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda signum: signum.name
)
def test_a_stop_signal_is_passed_on_as_sigterm_and_each_exit_reported(tmp_path, leftovers, signum):
    process, output = supervise(
        leftovers, tmp_path, "--port", str(free_port()), a="polite", b="polite"
    )
    stand_ins_ready(output, "a", "b")
    leftovers.update(children(output.lines))
    process.send_signal(signum)
    assert finish(process, output, timeout=60) == 0
    assert endings(output.lines) == {"a": CLEAN, "b": CLEAN}
    text = "\n".join(output.lines)
    assert f"{signal.Signals(signum).name} received: SIGTERM to a (pid" in text
    assert "a stopping" in text
    assert "b stopping" in text


def test_a_child_that_ignores_sigterm_is_killed_at_the_deadline_and_it_says_so(tmp_path, leftovers):
    process, output = supervise(
        leftovers,
        tmp_path,
        "--port",
        str(free_port()),
        "--stop-timeout",
        "1",
        a="stubborn",
        b="polite",
    )
    stand_ins_ready(output, "a", "b")
    leftovers.update(children(output.lines))
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert finish(process, output, timeout=60) == 1
    assert time.monotonic() - started >= 1
    assert endings(output.lines) == {"a": "was killed by SIGKILL", "b": CLEAN}
    assert any("did not stop within 1 s: SIGKILL" in line for line in output.lines)
    assert not alive(leftovers["a"])


def test_a_child_that_exits_on_its_own_stops_the_others(tmp_path, leftovers):
    process, output = supervise(
        leftovers, tmp_path, "--port", str(free_port()), a="polite", b="exits"
    )
    assert finish(process, output, timeout=60) == 1
    leftovers.update(children(output.lines))
    assert endings(output.lines) == {"a": CLEAN, "b": "exited with status 3"}
    assert any("stopped: b exited with status 3 on its own" in line for line in output.lines)


def test_a_busy_port_starts_nothing_and_names_the_holder(tmp_path, leftovers):
    port = free_port()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, sys; s = socket.create_server(('127.0.0.1', int(sys.argv[1])));"
            " print('listening', flush=True); sys.stdin.read()",
            str(port),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "listening\n"
        process = start_supervisor(
            local_env(tmp_path),
            "--procfile",
            str(procfile(tmp_path, a="polite", b="polite")),
            "--port",
            str(port),
        )
        leftovers.supervisors.append(process)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert process.returncode == 1
    assert f"port {port} is in use by pid {holder.pid} ({sys.executable} -c import socket" in (
        stderr
    )
    assert "Nothing was started" in stderr
    assert stdout == ""
    assert not list(tmp_path.glob("*.started"))


def test_make_run_checks_the_port_before_anything_else(tmp_path, capsys):
    dry_run = subprocess.run(
        [*make_run(8123), "--dry-run"],
        cwd=REPO,
        env=local_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    )
    commands = dry_run.stdout.splitlines()
    assert commands[0] == f"{VENV_BIN.parent}/bin/python -m vexxy.ports 127.0.0.1 8123"
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert ports.main(["127.0.0.1", str(port)]) == 1
    assert f"port {port} is in use by pid {os.getpid()} (" in capsys.readouterr().err
    assert ports.main(["127.0.0.1", str(port)]) == 0


def test_with_no_reader_left_it_stops_the_children_and_writes_nothing_more(tmp_path, leftovers):
    """Like ``make run | head``: the reader goes, no signal comes."""
    tee = start_tee(tmp_path / "log")
    process, _ = supervise(
        leftovers, tmp_path, "--port", str(free_port()), stdout=tee.stdin, a="chatty", b="polite"
    )
    tee.stdin.close()  # tee holds the only read end
    output = Lines(tee.stdout)
    stand_ins_ready(output, "a", "b")
    leftovers.update(children(output.lines))
    tee.kill()
    assert process.wait(timeout=60) == 0
    assert process.stderr.read() == ""  # no BrokenPipeError, no traceback
    assert not [name for name, pid in leftovers.items() if alive(pid)]


# -- the real Procfile ----------------------------------------------------------------


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A migrated data folder (SQLite, filesystem broker) that `make run`'s migrate leaves as is."""
    path = tmp_path_factory.mktemp("make-run")
    env = local_env(path)
    for command in (["migrate", "--noinput"], ["createcachetable"]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT,
        )
    return path


def livez(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/livez", headers={"Host": "localhost"})
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def wait_ready(output: Lines, port: int) -> None:
    output.wait_for(lambda line: "celery.apps.worker" in line and " ready." in line, START_TIMEOUT)
    output.wait_for(lambda line: "beat: Starting..." in line, START_TIMEOUT)
    wait_until(lambda: livez(port), START_TIMEOUT, "web answers /livez")


def assert_stopped_warm(lines: list[str], pids: dict[str, int]) -> None:
    text = "\n".join(lines)
    assert endings(lines) == {"web": CLEAN, "worker": CLEAN, "beat": CLEAN}, text
    assert not [line for line in lines if "did not stop within" in line or "killed by" in line]
    assert "Warm shutdown" in text  # Celery's own words
    assert "all stopped cleanly in" in text
    assert not [name for name, pid in pids.items() if alive(pid)]


@pytest.mark.slow
@pytest.mark.timeout(START_TIMEOUT + STOP_TIMEOUT + 120)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda signum: signum.name)
def test_the_procfile_stops_warm_on_a_signal(data_dir, leftovers, signum):
    port = free_port()
    env = local_env(data_dir)
    process = start_supervisor(env, "--port", str(port), "--stop-timeout", str(STOP_TIMEOUT))
    leftovers.supervisors.append(process)
    output = Lines(process.stdout)
    wait_ready(output, port)
    leftovers.update(children(output.lines))
    assert set(leftovers) == {"web", "worker", "beat"}
    started = time.monotonic()
    process.send_signal(signum)
    assert finish(process, output, timeout=STOP_TIMEOUT + 30) == 0, output.text()
    assert time.monotonic() - started < STOP_TIMEOUT
    assert_stopped_warm(output.lines, leftovers)


@pytest.mark.slow
@pytest.mark.timeout(START_TIMEOUT + STOP_TIMEOUT + 120)
def test_ctrl_c_stops_everything_when_the_reader_of_its_output_dies_with_it(
    data_dir, leftovers, tmp_path
):
    """``make run | tee log`` where Ctrl-C also ends ``tee``: the pipe breaks as SIGINT comes."""
    port = free_port()
    tee = start_tee(tmp_path / "log")
    process = start_supervisor(
        local_env(data_dir),
        "--port",
        str(port),
        "--stop-timeout",
        str(STOP_TIMEOUT),
        stdout=tee.stdin,
    )
    leftovers.supervisors.append(process)
    tee.stdin.close()  # tee holds the only read end
    output = Lines(tee.stdout)
    wait_ready(output, port)
    leftovers.update(children(output.lines))
    tee.send_signal(signal.SIGINT)  # the Ctrl-C reaches tee...
    assert tee.wait(timeout=30) == -signal.SIGINT
    process.send_signal(signal.SIGINT)  # ...and the supervisor, whose output has no reader
    # Exit status 0 is the supervisor's word that every child exited 0 without SIGKILL.
    assert process.wait(timeout=STOP_TIMEOUT + 30) == 0
    assert process.stderr.read() == ""  # no BrokenPipeError, no traceback
    assert not [name for name, pid in leftovers.items() if alive(pid)]


def make_run(port: int) -> list[str]:
    venv = VENV_BIN.parent
    return [
        "make",
        "--no-print-directory",
        f"VENV={venv}",
        "-o",
        f"{venv}/bin/.installed",  # installed already: no pip run from a test
        "run",
        f"PORT={port}",
        f"STOP_TIMEOUT={STOP_TIMEOUT}",
    ]


def ctrl_c_on_a_terminal(
    argv: list[str], port: int, data_dir: Path, leftovers: Started
) -> tuple[int, list[str]]:
    """Run ``argv`` on a pseudo-terminal until it serves, press Ctrl-C: its wait status, output."""
    terminal = Terminal(argv, local_env(data_dir), REPO)
    try:
        wait_ready(terminal.output, port)
        leftovers.update(children(terminal.output.lines))
        terminal.ctrl_c()
        status = terminal.wait(STOP_TIMEOUT + 30)
    finally:
        terminal.close()
    return status, terminal.output.lines


@pytest.mark.slow
@pytest.mark.timeout(2 * START_TIMEOUT + STOP_TIMEOUT + 120)
def test_ctrl_c_on_a_terminal_ends_make_run_without_an_error(data_dir, leftovers):
    port = free_port()
    status, lines = ctrl_c_on_a_terminal(make_run(port), port, data_dir, leftovers)
    text = "\n".join(lines)
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "make: ***" not in text
    assert "SIGINT received" in text
    assert_stopped_warm(lines, leftovers)


@pytest.mark.slow
@pytest.mark.timeout(2 * START_TIMEOUT + STOP_TIMEOUT + 120)
def test_ctrl_c_on_a_terminal_ends_make_run_piped_to_tee(data_dir, leftovers, tmp_path):
    port = free_port()
    log = tmp_path / "log"
    command = " ".join(make_run(port))
    script = f'{command} | tee {log}; echo "pipeline status ${{PIPESTATUS[*]}}"'
    status, lines = ctrl_c_on_a_terminal(
        ["bash", "--norc", "-c", script], port, data_dir, leftovers
    )
    assert os.waitstatus_to_exitcode(status) == 0
    assert "pipeline status 0 0" in lines
    # tee, out of the Ctrl-C's way, logged the shutdown to the end.
    assert_stopped_warm(log.read_text().splitlines(), leftovers)
