"""The image's health check for every role it runs as: ``python -m vexxy.container_health``.

One image runs as web (gunicorn), Celery worker or Celery beat, and a ``HEALTHCHECK`` that
polls ``/livez`` marks every worker and beat unhealthy. This check finds the role in
``VEXXY_ROLE``, or else in PID 1's command line (``--pid`` for another process), and then:

* web: ``GET /livez`` on the address gunicorn binds (its ``--bind``), with ``Host:
  localhost``, which settings.py allows in production for this check.
* worker: a worker heartbeat in the shared cache (reliability/heartbeats.py), the signal
  ``/health`` reads, younger than ``HEALTH_CELERY_STALE_SECONDS``. Not ``celery inspect
  ping``: that would start a Celery client in every worker container at every interval
  and broadcast through the broker to every worker, each one parsing every ping; reading
  the heartbeat is one cache read, and the broker is not involved. The record is the
  newest of any worker's (the check reports whose): with several workers it says that
  the workers beat, not that this one does.
* beat: its schedule file (``--schedule``, else ``CELERY_BEAT_SCHEDULE_FILENAME``) was
  written recently. Celery's PersistentScheduler writes it when it starts, then when it
  sends a task at least ``sync_every`` (3 min) after its last write: a beat that stopped
  ticking leaves it older than ``sync_every`` + twice the shortest schedule interval.

Exit status 0 when healthy, 1 when not (what Docker's HEALTHCHECK and a Kubernetes exec
probe read), with one line saying why. Web needs no Django; worker and beat read the
settings, and worker the cache, without ``django.setup()``: importing every app would
triple the check's CPU time.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

PROC = Path("/proc")
ROLES = ("web", "worker", "beat")
WEB_TIMEOUT = 4.0
# Allowance for a slow host on top of the beat schedule's own rhythm.
BEAT_SLACK_SECONDS = 60.0
# Dumb and NDBM stores add suffixes to the schedule's name; GNU dbm uses it as it is.
SCHEDULE_SUFFIXES = ("", ".db", ".dat", ".dir")


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reason: str


def read_argv(pid: int, proc: Path = PROC) -> list[str]:
    raw = (proc / str(pid) / "cmdline").read_bytes()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def role_of(argv: Sequence[str]) -> str | None:
    """web for gunicorn; worker or beat for ``celery ... worker|beat``; else ``None``."""
    for index, arg in enumerate(argv):
        name = Path(arg).name
        if name.startswith("gunicorn"):
            return "web"
        if name == "celery":
            return next((word for word in argv[index + 1 :] if word in ("worker", "beat")), None)
    return None


def option(argv: Sequence[str], short: str, long: str) -> str | None:
    """The value of ``-x VALUE``, ``-xVALUE``, ``--long VALUE`` or ``--long=VALUE``; first wins."""
    for index, arg in enumerate(argv):
        if arg in (short, long):
            return argv[index + 1] if index + 1 < len(argv) else None
        if arg.startswith(long + "="):
            return arg[len(long) + 1 :]
        if arg.startswith(short) and not arg.startswith("--") and len(arg) > len(short):
            return arg[len(short) :]
    return None


# -- web ---------------------------------------------------------------------------------


def livez_address(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[str, int]:
    """Where to reach the gunicorn of ``argv``: its first ``--bind``, or gunicorn's default."""
    bind = option(argv, "-b", "--bind")
    if bind is None:
        bind = f"0.0.0.0:{environ['PORT']}" if environ.get("PORT") else "127.0.0.1:8000"
    if bind.startswith(("unix:", "fd://")):
        raise ValueError(f"gunicorn binds {bind}: no TCP address to ask")
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104
    return host, int(port)


def check_web(host: str, port: int, timeout: float = WEB_TIMEOUT) -> Verdict:
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    started = time.monotonic()
    try:
        connection.request("GET", "/livez", headers={"Host": "localhost"})
        status = connection.getresponse().status
    except OSError as error:
        return Verdict(False, f"GET /livez on {host}:{port}: {error}")
    finally:
        connection.close()
    took = (time.monotonic() - started) * 1000
    return Verdict(status == 200, f"GET /livez on {host}:{port} answered {status} in {took:.0f} ms")


# -- worker ------------------------------------------------------------------------------


def worker_node(argv: Sequence[str]) -> str:
    """The node name the worker of ``argv`` goes by, expanded as Celery expands it."""
    from celery.utils.nodenames import default_nodename, host_format

    return host_format(default_nodename(option(argv, "-n", "--hostname")))


def check_worker(node: str, max_age: float | None = None) -> Verdict:
    from reliability.heartbeats import last_heartbeat
    from reliability.settings import reliability_settings

    limit = reliability_settings.HEALTH_CELERY_STALE_SECONDS if max_age is None else max_age
    with warnings.catch_warnings():
        # The cache needs settings, not the app registry: without django.setup() the check
        # costs a third of the CPU (1 s instead of 3 s, every interval, in every worker
        # container); Django then warns about a query "during app initialization".
        warnings.filterwarnings("ignore", "Accessing the database", RuntimeWarning)
        heartbeat = last_heartbeat(node)
    if heartbeat is None:
        return Verdict(False, f"no heartbeat of {node} recorded in the cache")
    age = heartbeat.age()
    if age > limit:
        return Verdict(False, f"last heartbeat of {node} {age:.0f} s ago, over {limit:g} s")
    return Verdict(True, f"heartbeat of {node} {age:.1f} s ago")


# -- beat --------------------------------------------------------------------------------


def beat_schedule(argv: Sequence[str], cwd: Path) -> Path:
    value = option(argv, "-s", "--schedule")
    if value is None:
        from django.conf import settings

        value = settings.CELERY_BEAT_SCHEDULE_FILENAME
    return cwd / value  # an absolute value replaces cwd


def beat_max_age(schedule: Mapping[str, Mapping[str, object]]) -> float:
    """How old the schedule file may grow while beat ticks (see the module docstring)."""
    from celery.beat import PersistentScheduler

    intervals = [s for entry in schedule.values() if (s := _seconds(entry.get("schedule")))]
    shortest = min(intervals, default=float(PersistentScheduler.max_interval))
    return PersistentScheduler.sync_every + 2 * shortest + BEAT_SLACK_SECONDS


def check_beat(pid: int, argv: Sequence[str], max_age: float | None, proc: Path = PROC) -> Verdict:
    if not _alive(pid, proc):
        return Verdict(False, f"process {pid} is not running")
    path = beat_schedule(argv, Path(os.readlink(proc / str(pid) / "cwd")))
    if max_age is None:
        from django.conf import settings

        max_age = beat_max_age(settings.CELERY_BEAT_SCHEDULE)
    written = [p.stat().st_mtime for p in _schedule_files(path)]
    if not written:
        return Verdict(False, f"no schedule file at {path}")
    age = time.time() - max(written)
    verdict = f"schedule {path} written {age:.0f} s ago"
    return Verdict(age <= max_age, verdict + ("" if age <= max_age else f", over {max_age:g} s"))


def _schedule_files(path: Path) -> list[Path]:
    return [p for p in (Path(f"{path}{suffix}") for suffix in SCHEDULE_SUFFIXES) if p.is_file()]


def _seconds(value: object) -> float | None:
    """A schedule's interval in seconds: a number, a timedelta or ``schedule(run_every=…)``."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    run_every = getattr(value, "run_every", None)
    return run_every.total_seconds() if isinstance(run_every, timedelta) else None


def _alive(pid: int, proc: Path) -> bool:
    try:
        state = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


# -- command -----------------------------------------------------------------------------


def check(role: str, pid: int, argv: Sequence[str], args: argparse.Namespace) -> Verdict:
    checks: dict[str, Callable[[], Verdict]] = {
        "web": lambda: check_web(*livez_address(argv, os.environ), timeout=args.timeout),
        "worker": lambda: check_worker(worker_node(argv), args.max_age),
        "beat": lambda: check_beat(pid, argv, args.max_age),
    }
    return checks[role]()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vexxy.container_health")
    parser.add_argument("--role", choices=ROLES, default=os.environ.get("VEXXY_ROLE") or None)
    parser.add_argument("--pid", type=int, default=1, help="the process checked (default: 1)")
    parser.add_argument("--max-age", type=float, help="worker, beat: seconds before stale")
    parser.add_argument("--timeout", type=float, default=WEB_TIMEOUT, help="web: seconds")
    args = parser.parse_args(argv)
    role = args.role
    try:
        command = read_argv(args.pid)
        role = role or role_of(command)
        if role is None:
            verdict = Verdict(
                False, f"cannot tell the role of {' '.join(command)!r}: set VEXXY_ROLE"
            )
        elif role not in ROLES:
            verdict = Verdict(False, f"VEXXY_ROLE is {role!r}, not one of {', '.join(ROLES)}")
        else:
            verdict = check(role, args.pid, command, args)
    except Exception as error:  # a health check answers; it does not crash
        verdict = Verdict(False, f"check failed: {type(error).__name__}: {error}")
    state = "healthy" if verdict.healthy else "unhealthy"
    print(f"{role or 'unknown role'}: {state}: {verdict.reason}")
    return 0 if verdict.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
