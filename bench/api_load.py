"""Benchmark: the API under HTTP load, as ratios to a bare Django view and to the peer.

Run from the repository root (needs wrk, PostgreSQL and Redis: ``apt-get install wrk
postgresql redis-server``)::

    .venv/bin/python bench/api_load.py                 # 1, 8 and 32 connections, 15 s runs
    .venv/bin/python bench/api_load.py --quick         # 8 connections, 4 s runs
    .venv/bin/python bench/api_load.py --peer T.tsv    # with the peer's throughput ratios
    .venv/bin/python bench/api_load.py --serve         # start, seed, print the peer's command

It starts a throwaway PostgreSQL and Redis on loopback, migrates, and seeds what the peer's
harness seeds (``../shared/bench-anchor/loadgen.md``: 200 jobs, the status target
``11111111-2222-4333-8444-555555555555`` running) for one organization, and the same 200 jobs
with 450 stored results per complete job for a second. It serves the service as the
Procfile does (``gunicorn -c gunicorn.conf.py``: sync workers, 2 per core + 1), with an
idle Celery worker and beat, logs at WARNING and ``API_RATE_LIMIT`` high enough that the
throttle runs but never refuses. Then wrk (closed loop, keep-alive, on loopback) runs each
endpoint after a warm-up:

* ``floor`` — ``/bench/floor`` (``bench/floor.py``): a plain Django JSON view, same server
  and middleware, no DRF or database: our own floor;
* ``status``, ``list`` (50 jobs), ``health`` — the peer's three endpoints;
* ``status-complete`` / ``list-results`` — the same on the organization whose complete jobs
  hold 450 results each, against ``status`` / ``list`` without.

For each it prints requests/s, p50/p99 latency and the CPU the server's processes spent per
request (utime + stime from ``/proc``), then each target of issue 12 with its ratio. With
``--peer`` (the ``results.tsv`` written by ``run_anchor.sh`` in the same session) it adds the
throughput and CPU ratios against the peer. Nothing here is a pass/fail on absolute time:
machines differ by 2-3x from day to day, a ratio from one session much less.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.servers import (  # noqa: E402
    free_port,
    service_env,
    throwaway_postgres,
    throwaway_redis,
)

JOB_ID = "11111111-2222-4333-8444-555555555555"
CLK_TCK = os.sysconf("SC_CLK_TCK")
REPORT_LUA = """
done = function(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f p50=%.2f p99=%.2f status_err=%d sock_err=%d\\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""

SEED = r"""
import hashlib, json, os, uuid
from datetime import datetime, timedelta, UTC
from analysis.api_keys import issue_key
from analysis.models import AnalysisJob, Organization, ReachabilityResult

def seed(slug, job0, results_per_complete):
    org = Organization.objects.create(name=slug, slug=slug, monthly_analysis_quota=10**6)
    base = datetime(2026, 11, 1, tzinfo=UTC)
    config = {"ports": [8080], "environment": {}, "command": None, "health_check_path": "/",
              "health_check_timeout": 60, "analysis_duration": 300, "enable_fuzzing": True,
              "enable_profiling": True, "enable_pentesting": False,
              "enable_code_coverage": False, "test_script": None, "test_timeout": 300}
    cycle = ["complete", "complete", "failed", "queued", "cancelled"]
    jobs = []
    for i in range(200):
        status = "running" if i == 0 else cycle[i % 5]
        created = base + timedelta(minutes=i)
        done = status in ("complete", "failed", "cancelled")
        jobs.append(AnalysisJob(
            id=job0 if i == 0 else uuid.uuid5(uuid.NAMESPACE_URL, f"{slug}-job-{i}"),
            organization=org, image_ref=f"docker.io/library/nginx:1.{i % 30}",
            image_digest="sha256:" + hashlib.sha256(str(i).encode()).hexdigest(),
            profile="standard", config=config, status=status, priority=0,
            progress_percent=100 if done else (40 if status == "running" else 0),
            current_phase={"running": "analyzing", "queued": "pending"}.get(status, status),
            created_at=created, updated_at=created,
            started_at=None if status == "queued" else created + timedelta(seconds=5),
            completed_at=created + timedelta(minutes=6) if done else None,
            error_message="Pod failed: ImagePullBackOff" if status == "failed" else "",
            sandbox_name="" if status == "queued" else f"vexxy-sandbox-{i:04d}",
            summary={"total": results_per_complete}
            if status == "complete" and results_per_complete else None,
        ))
    AnalysisJob.objects.bulk_create(jobs)
    rows = []
    for job in jobs:
        if job.status != "complete":
            continue
        for n in range(results_per_complete):
            cve = f"CVE-2026-{n:05d}"
            data = {"cve_id": cve, "status": "not_affected", "justification":
                    "vulnerable_code_not_in_execute_path", "confidence_score": 0.9,
                    "reason": "The package was never loaded while the image ran.", "action": None,
                    "package": f"pkg:deb/debian/libexample{n}@1.2.{n}", "package_name":
                    f"libexample{n}", "package_version": f"1.2.{n}", "purl":
                    f"pkg:deb/debian/libexample{n}@1.2.{n}", "severity": "High",
                    "fix_state": "not-fixed"}
            rows.append(ReachabilityResult(job=job, position=n, cve_id=cve, package_name=
                        data["package_name"], status="not_affected", severity="High", data=data))
    ReachabilityResult.objects.bulk_create(rows, batch_size=2000)
    complete = next(job.pk for job in jobs if job.status == "complete")
    queued = next(job.pk for job in jobs if job.status == "queued")
    key = issue_key(org, "bench").plaintext
    return {"key": key, "complete": str(complete), "queued": str(queued)}

print("SEEDED " + json.dumps({
    "plain": seed("bench", uuid.UUID(os.environ["JOB_ID"]), 0),
    "results": seed("bench-results", uuid.uuid4(), 450),
}))
"""


@dataclass
class Run:
    endpoint: str
    conc: int
    requests: int
    seconds: float
    p50: float
    p99: float
    errors: int
    cpu_seconds: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_seconds / max(self.requests, 1)


def tree_cpu_seconds(root: int) -> float:
    """utime + stime (and reaped children's) of a process and its descendants."""
    children: dict[int, list[int]] = defaultdict(list)
    stats: dict[int, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        stats[pid] = fields
        children[int(fields[1])].append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += sum(int(stats[pid][i]) for i in (11, 12, 13, 14))
        todo.extend(children.get(pid, ()))
    return total / CLK_TCK


class Stack:
    """PostgreSQL, Redis, gunicorn, a Celery worker and beat, all on loopback, all stopped."""

    def __init__(self, workdir: Path, gunicorn_args: list[str]) -> None:
        self.dir = workdir
        self.gunicorn_args = gunicorn_args
        self.processes: list[subprocess.Popen] = []
        self.backends = contextlib.ExitStack()
        self.web_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        self.env = service_env(workdir, DJANGO_SETTINGS_MODULE="bench.floor_settings")
        self.web: subprocess.Popen | None = None
        self.postmaster_pid = 0

    def start_backends(self) -> None:
        postgres = self.backends.enter_context(throwaway_postgres("vexxy"))
        redis = self.backends.enter_context(throwaway_redis())
        self.postmaster_pid = postgres.pid
        self.env.update(
            DATABASE_URL=postgres.url, REDIS_URL=f"{redis}/0", CELERY_BROKER_URL=f"{redis}/1"
        )

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def seed(self) -> dict:
        self.manage("migrate", "--noinput")
        out = subprocess.run(
            [sys.executable, "-c", "import django; django.setup()\n" + SEED],
            cwd=REPO,
            env={**self.env, "JOB_ID": JOB_ID},
            check=True,
            capture_output=True,
            text=True,
        )
        line = next(line for line in out.stdout.splitlines() if line.startswith("SEEDED "))
        return json.loads(line.removeprefix("SEEDED "))

    def start_services(self) -> None:
        log = open(self.dir / "services.log", "ab")  # noqa: SIM115 - closed with the processes
        celery = [sys.executable, "-m", "celery", "-A", "vexxy"]
        self.web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "vexxy.wsgi",
                "--bind",
                f"127.0.0.1:{self.web_port}",
                *self.gunicorn_args,
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=log,
        )
        for args in (["worker", "--pool", "solo", "--loglevel", "WARNING"], ["beat"]):
            self.processes.append(
                subprocess.Popen(
                    [*celery, *args, "--schedule", str(self.dir / "beat")]
                    if args == ["beat"]
                    else [*celery, *args],
                    cwd=REPO,
                    env=self.env,
                    stdout=log,
                    stderr=log,
                )
            )
        self.processes.append(self.web)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.base_url + "/livez", timeout=5):  # noqa: S310
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"the server never answered; see {self.dir / 'services.log'}")

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.backends.close()


def wrk(
    stack: Stack, lua: Path, path: str, key: str | None, conc: int, seconds: int
) -> tuple[dict[str, float], float]:
    header = ["-H", f"Authorization: Api-Key {key}"] if key else []
    threads = min(2, conc)
    cpu_before = tree_cpu_seconds(stack.web.pid)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{conc}",
            f"-d{seconds}s",
            "--timeout",
            "30s",
            *header,
            "-s",
            str(lua),
            stack.base_url + path,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    cpu = tree_cpu_seconds(stack.web.pid) - cpu_before
    match = re.search(r"^RESULT (.*)$", out.stdout, re.MULTILINE)
    if match is None:
        raise SystemExit(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    values = {k: float(v) for k, v in (pair.split("=") for pair in match.group(1).split())}
    return values, cpu


def measure(stack, lua, endpoint, path, key, conc, seconds, warmup) -> Run:
    wrk(stack, lua, path, key, conc, warmup)
    time.sleep(1)  # the requests in flight when wrk stopped
    values, cpu = wrk(stack, lua, path, key, conc, seconds)
    time.sleep(1)
    run = Run(
        endpoint,
        conc,
        int(values["requests"]),
        values["seconds"],
        values["p50"],
        values["p99"],
        int(values["status_err"] + values["sock_err"]),
        cpu,
    )
    print(
        f"| {endpoint} | {conc} | {run.rps:.0f} | {run.p50:.2f} | {run.p99:.2f} | "
        f"{run.errors} | {run.cpu_ms:.2f} |",
        flush=True,
    )
    return run


def read_peer(path: Path) -> dict[tuple[str, int], tuple[float, float]]:
    """run_anchor.sh's results.tsv -> (endpoint, conc) -> (median req/s, median CPU ms/req)."""
    samples: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    with path.open() as handle:
        for row in csv.reader(handle, delimiter="\t"):
            if not row[0].isdigit():  # a variant ("info-logs": INFO logs on), not a round
                continue
            result = dict(pair.split("=") for pair in row[3].split()[1:])
            cpu = dict(pair.split("=") for pair in row[4].split())
            requests = float(result["requests"])
            samples[(row[1], int(row[2]))].append(
                (float(result["rps"]), 1000 * int(cpu["app"]) / CLK_TCK / max(requests, 1))
            )
    return {
        key: (median(s[0] for s in values), median(s[1] for s in values))
        for key, values in samples.items()
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(runs: list[Run], peer: dict | None) -> None:
    by = {(run.endpoint, run.conc): run for run in runs}
    print("\nTargets (issue 12):")
    for conc in (8, 32):
        status, floor = by.get(("status", conc)), by.get(("floor", conc))
        if status and floor:
            ratio = status.cpu_ms / floor.cpu_ms
            print(
                f"  status c={conc}: CPU/request {ratio:.2f}x the bare Django view "
                f"(target <= 1.5x) {verdict(ratio <= 1.5)}"
            )
        if status and peer and ("status", conc) in peer:
            peer_rps, peer_cpu = peer[("status", conc)]
            print(
                f"  status c={conc}: {status.rps / peer_rps:.2f}x the peer's throughput "
                f"(target >= 1.5x) {verdict(status.rps / peer_rps >= 1.5)}; CPU/request "
                f"{status.cpu_ms / peer_cpu:.2f}x (target <= 0.67x) "
                f"{verdict(status.cpu_ms / peer_cpu <= 0.67)}"
            )
    for conc in (1, 8, 32):
        listed = by.get(("list", conc))
        if listed and peer and ("list", conc) in peer:
            ratio = listed.rps / peer[("list", conc)][0]
            print(
                f"  list c={conc}: {ratio:.2f}x the peer (target >= 1.5x) {verdict(ratio >= 1.5)}"
            )
    for heavy, light, label in (
        ("list-results", "list", "list with 450 results per complete job"),
        ("status-complete", "status-queued", "status of a complete job with 450 results"),
    ):
        a, b = by.get((heavy, 8)), by.get((light, 8))
        if a and b:
            ratio = a.cpu_ms / b.cpu_ms
            print(
                f"  {label}: {ratio:.2f}x the CPU/request of {b.endpoint} "
                f"(target <= 1.2x) {verdict(ratio <= 1.2)}"
            )
    health = by.get(("health", 8))
    if health:
        ok = verdict(health.p99 <= 50)
        print(f"  /health p99 at c=8: {health.p99:.1f} ms (target <= 50 ms) {ok}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="c=8 only, 4 s runs")
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--conc", default="1,8,32")
    parser.add_argument("--peer", type=Path, help="run_anchor.sh's results.tsv, same session")
    parser.add_argument("--serve", action="store_true", help="start and seed, then wait")
    parser.add_argument("--only", help="comma-separated endpoints to run (default: all)")
    parser.add_argument(
        "--gunicorn", default="-c gunicorn.conf.py", help="gunicorn options (default: as deployed)"
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.conc = 4, 2, "8"
    concs = [int(c) for c in args.conc.split(",")]
    if shutil.which("wrk") is None and not args.serve:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    workdir = Path(tempfile.mkdtemp(prefix="vexxy-api-load-"))
    stack = Stack(workdir, args.gunicorn.split())
    try:
        stack.start_backends()
        seeded = stack.seed()
        stack.start_services()
        plain, heavy = seeded["plain"], seeded["results"]
        if args.serve:
            serve(stack, plain)
            return
        lua = workdir / "report.lua"
        lua.write_text(REPORT_LUA)
        status = f"/api/v1/analysis/{JOB_ID}/status"
        print(f"server: gunicorn {args.gunicorn}; {os.cpu_count()} CPUs; {args.duration} s runs")
        print("| endpoint | conc | req/s | p50 ms | p99 ms | errors | CPU ms/req |")
        print("|---|---|---|---|---|---|---|")
        only = set(args.only.split(",")) if args.only else None
        runs = []
        for endpoint, path, key, levels in (
            ("floor", "/bench/floor", None, concs),
            ("status", status, plain["key"], concs),
            ("health", "/health", None, concs),
            ("list", "/api/v1/analysis?page_size=50", plain["key"], concs),
            ("list-results", "/api/v1/analysis?page_size=50", heavy["key"], [8]),
            ("status-queued", f"/api/v1/analysis/{heavy['queued']}/status", heavy["key"], [8]),
            ("status-complete", f"/api/v1/analysis/{heavy['complete']}/status", heavy["key"], [8]),
        ):
            if only and endpoint not in only:
                continue
            for conc in levels:
                runs.append(
                    measure(stack, lua, endpoint, path, key, conc, args.duration, args.warmup)
                )
        report(runs, read_peer(args.peer) if args.peer else None)
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def serve(stack: Stack, plain: dict) -> None:
    print(
        f"serving at {stack.base_url}; the peer's load against it:\n"
        f"  BASE_URL={stack.base_url} WRK_HEADER='Authorization: Api-Key {plain['key']}' "
        f"LIST_PATH='/api/v1/analysis?page_size=50' SERVER_PID={stack.web.pid} "
        f"DB_PID={stack.postmaster_pid} ../shared/bench-anchor/run_anchor.sh measure\n"
        "Ctrl-C (or SIGTERM) stops everything.",
        flush=True,
    )
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in background
    with contextlib.suppress(KeyboardInterrupt):
        signal.pause()


if __name__ == "__main__":
    main()
