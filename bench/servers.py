"""Throwaway PostgreSQL and Redis servers on loopback for the bench scripts, stopped after use.

Started as ``.ci/run`` starts them: the newest /usr/lib/postgresql/*/bin, run as user
postgres when we are root (initdb and postgres refuse root), fsync off, a free port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BACKEND_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CACHE_URL", "CELERY_BROKER_URL")


@dataclass(frozen=True)
class Postgres:
    url: str  # of the created database
    pid: int  # the postmaster's, for CPU accounting
    version: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts[-3])
    if not found:
        sys.exit("no PostgreSQL under /usr/lib/postgresql (apt-get install postgresql)")
    return found[-1].parent


def as_postgres(*command: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


def run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


@contextlib.contextmanager
def throwaway_postgres(database: str) -> Iterator[Postgres]:
    """A PostgreSQL server of our own with ``database`` created; removed afterwards."""
    bin_dir, port = postgres_bin(), free_port()
    folder = Path(tempfile.mkdtemp(prefix="vexxy-bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, pg_ctl = folder / "data", str(bin_dir / "pg_ctl")
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {folder} -c fsync=off"
    try:
        run(as_postgres(str(bin_dir / "initdb"), "-A", "trust", "-U", "postgres", "-D", str(data)))
        log = str(folder / "postgres.log")
        run(as_postgres(pg_ctl, "-D", str(data), "-w", "-l", log, "-o", options, "start"))
        psql = [str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        run([*psql, "-qc", f"CREATE DATABASE {database}"])
        yield Postgres(
            url=f"postgres://postgres@127.0.0.1:{port}/{database}",
            pid=int((data / "postmaster.pid").read_text().split()[0]),
            version=run([str(bin_dir / "postgres"), "--version"]).split()[2],
        )
    finally:
        subprocess.run(
            as_postgres(pg_ctl, "-D", str(data), "-m", "immediate", "stop"),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def throwaway_redis() -> Iterator[str]:
    """A Redis server of our own, nothing saved; yields its base URL (no database number)."""
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            ping = ["redis-cli", "-p", str(port), "ping"]
            if subprocess.run(ping, capture_output=True, check=False).returncode == 0:
                break
        yield f"redis://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def service_env(workdir: Path, **overrides: str) -> dict[str, str]:
    """The service as deployed, quiet and without a cluster, its data under ``workdir``.

    No backend variable is inherited: the caller gives the throwaway servers' URLs, or
    the embedded defaults apply.
    """
    env = {key: value for key, value in os.environ.items() if key not in BACKEND_VARIABLES}
    env.update(
        DJANGO_SETTINGS_MODULE="vexxy.settings",
        SECRET_KEY="bench-" + "x" * 40,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        ENVIRONMENT="production",
        SECURE_COOKIES="false",
        LOG_LEVEL="WARNING",
        SANDBOX_ENABLED="false",
        API_RATE_LIMIT="100000000/minute",
        VEXXY_DATA_DIR=str(workdir / "var"),
        PYTHONPATH=str(REPO),
    )
    env.update(overrides)
    return env
