"""What metrics and tracing add to the job status endpoint's CPU per request.

Configurations of the same process, each in a fresh interpreter, in rounds whose order
rotates (each configuration runs first in turn). Each ratio is the median over the rounds of
the configuration's CPU over that round's ``bare``, so that a drift of the host between rounds
cancels out:

- ``bare``: the request's metric observation replaced by a no-op, tracing off;
- ``metrics``: as deployed, prometheus-client in multiprocess mode, tracing off (the default);
- ``metrics+tracing``: the same with OpenTelemetry on, every span handed to an exporter that
  drops it (the spans are made, attributed and ended; nothing is sent);
- ``metrics+tracing-1%``: the same, sampling one trace in a hundred (``OTEL_TRACES_SAMPLER``);
- with ``--breakdown``, also ``metrics+request-spans`` (tracing without the database
  instrumentation) and ``metrics+query-spans`` (without the Django instrumentation).

Each child serves ``--requests`` authenticated ``GET /api/v1/analysis/{id}/status`` through
Django's test client (no network, no server) on a throwaway PostgreSQL and Redis, as deployed
(``--sqlite``: SQLite and the database cache, whose throttle costs a dozen queries a request,
each of them a span), and reports its process CPU time per request. The ratios against
``bare`` are printed with their target (at most 1.10). The ``metrics`` child also times the
one observation a status request makes on its own and prints it as a share of its request:
on a host whose speed drifts by more than 10 % between rounds, that share is the steadier
figure for metrics.
Run: ``.venv/bin/python bench/observability_overhead.py [--quick] [--sqlite] [--breakdown]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.servers import throwaway_postgres, throwaway_redis  # noqa: E402

CONFIGS = ("bare", "metrics", "metrics+tracing", "metrics+tracing-1%")
# --breakdown: tracing with one side of it only, to see what each instrumentation costs.
BREAKDOWN = ("metrics+request-spans", "metrics+query-spans")
TARGET = 1.10
WARMUP = 200
OBSERVATIONS = 20_000


def child_env(workdir: Path, config: str, backends: dict[str, str]) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "PROMETHEUS_")) and key not in BACKENDS
    }
    env.update(backends)
    env.update(
        DJANGO_SETTINGS_MODULE="vexxy.settings",
        VEXXY_DATA_DIR=str(workdir),
        ALLOWED_HOSTS="localhost",
        SANDBOX_ENABLED="false",
        API_RATE_LIMIT="100000000/minute",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(REPO),
    )
    if config != "bare":  # bare keeps the in-process registry; its observation is a no-op
        env["PROMETHEUS_MULTIPROC_DIR"] = str(workdir / f"metrics-{config}")
    if config.endswith("-1%"):
        # The standard sampler variables: 1 trace in 100 recorded, a caller's decision kept.
        env.update(OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0.01")
    return env


BACKENDS = ("DATABASE_URL", "REDIS_URL", "CACHE_URL", "CELERY_BROKER_URL")


def prepare(workdir: Path, backends: dict[str, str]) -> dict[str, str]:
    """Migrate, create the cache table, seed one organization, key and job."""
    env = child_env(workdir, "bare", backends)
    for command in (["migrate", "--noinput"], ["createcachetable"]):
        subprocess.run(
            [sys.executable, "manage.py", *command, "--verbosity", "0"],
            cwd=REPO,
            env=env,
            check=True,
        )
    seeded = subprocess.run(
        [sys.executable, __file__, "--seed"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(seeded.stdout)


def seed() -> None:
    import django

    django.setup()
    from analysis.api_keys import issue_key
    from analysis.models import AnalysisJob, Organization

    organization = Organization.objects.create(name="Bench", slug="bench")
    issued = issue_key(organization, "bench")
    job = AnalysisJob.objects.create(
        organization=organization,
        image_ref="docker.io/library/nginx:1.25",
        image_digest="sha256:" + "e" * 64,
    )
    print(json.dumps({"key": issued.plaintext, "job": str(job.pk)}))


def measure(config: str, key: str, job: str, requests: int) -> None:
    """In a child: CPU seconds per status request under ``config``, printed as JSON."""
    if config not in ("bare", "metrics"):
        trace_as(config)
    import django

    django.setup()
    from django.test import Client
    from django.urls import resolve

    if config == "bare":
        import reliability.middleware

        reliability.middleware.observe_request = lambda *args: None  # type: ignore[assignment]

    client = Client(HTTP_HOST="localhost", HTTP_X_API_KEY=key)
    url = f"/api/v1/analysis/{job}/status"
    for _ in range(WARMUP):
        assert client.get(url).status_code == 200
    started = time.process_time()
    for _ in range(requests):
        client.get(url)
    cpu = time.process_time() - started
    measured = {"config": config, "cpu_per_request": cpu / requests}
    if config == "metrics":
        measured["observation"] = observation_cpu(resolve(url).route)
    print(json.dumps(measured))


def trace_as(config: str) -> None:
    """Tracing on as deployed, every span dropped; less of it for the breakdown's configs."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from vexxy.tracing import configure_tracing

    class Dropped(SpanExporter):
        def export(self, spans):  # type: ignore[no-untyped-def]
            return SpanExportResult.SUCCESS

    configure_tracing("web", exporter=Dropped())
    if config.endswith("request-spans"):
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
        from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

        PsycopgInstrumentor().uninstrument()
        SQLite3Instrumentor().uninstrument()
    elif config.endswith("query-spans"):
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        DjangoInstrumentor().uninstrument()  # before the test client loads the middleware


def observation_cpu(route: str) -> float:
    """CPU seconds of the one metric observation a successful status request makes, alone.

    The whole request's ratio moves by more than this between rounds on a noisy host; timed
    on its own, in the same process and minute as its requests, it is the metrics' cost.
    """
    from reliability.middleware import observe_request

    started = time.process_time()
    for _ in range(OBSERVATIONS):
        observe_request(route, "GET", 200, 0.002)
    return (time.process_time() - started) / OBSERVATIONS


def run_child(
    workdir: Path, config: str, seeded: dict[str, str], requests: int, backends: dict[str, str]
) -> dict[str, float]:
    env = child_env(workdir, config, backends)
    if "PROMETHEUS_MULTIPROC_DIR" in env:
        Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(exist_ok=True)  # as gunicorn.conf.py does
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            config,
            "--key",
            seeded["key"],
            "--job",
            seeded["job"],
            "--requests",
            str(requests),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"{config}: the measuring process failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def rotated(configs: tuple[str, ...], number: int) -> tuple[str, ...]:
    """Round ``number``'s order: each configuration runs first in turn, so none is always first."""
    start = number % len(configs)
    return configs[start:] + configs[:start]


def round_ratios(samples: dict[str, list[float]], config: str) -> list[float]:
    """``config``'s CPU over ``bare``'s, round by round: a drift of the host cancels in each."""
    return [value / base for value, base in zip(samples[config], samples["bare"], strict=True)]


def report(samples: dict[str, list[float]]) -> bool:
    rounds = len(samples["bare"])
    print(f"\n| configuration | CPU per request (µs, median of {rounds}) | ratio | range |")
    print("|---|---|---|---|")
    met = True
    for config in samples:
        ratios = round_ratios(samples, config)
        ratio = statistics.median(ratios)
        cpu = statistics.median(samples[config]) * 1e6
        print(f"| {config} | {cpu:.0f} | {ratio:.3f}x | {min(ratios):.2f}-{max(ratios):.2f} |")
    print()
    for config in list(samples)[1:]:
        ratio = statistics.median(round_ratios(samples, config))
        if config in BREAKDOWN:
            print(f"{config}: {ratio:.3f}x the bare request's CPU (a part of metrics+tracing)")
            continue
        met &= ratio <= TARGET
        verdict = "met" if ratio <= TARGET else "NOT met"
        print(f"{config}: {ratio:.3f}x the bare request's CPU (target <= {TARGET}x): {verdict}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 1,000 requests")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--sqlite", action="store_true", help="SQLite and the database cache")
    parser.add_argument("--seed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--breakdown", action="store_true", help="also tracing's requests and queries apart"
    )
    parser.add_argument("--child", choices=CONFIGS + BREAKDOWN, help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        seed()
        return 0
    if args.child:
        measure(args.child, args.key, args.job, args.requests)
        return 0
    rounds, requests = (1, 1000) if args.quick else (args.rounds, args.requests)
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vexxy-obs-")))
        backends: dict[str, str] = {}
        if args.sqlite:
            print("SQLite and the database cache")
        else:
            postgres = stack.enter_context(throwaway_postgres("vexxy"))
            redis = stack.enter_context(throwaway_redis())
            backends = {"DATABASE_URL": postgres.url, "REDIS_URL": f"{redis}/0"}
            print(f"PostgreSQL {postgres.version} and Redis")
        seeded = prepare(workdir, backends)
        configs = CONFIGS + BREAKDOWN if args.breakdown else CONFIGS
        samples: dict[str, list[float]] = {config: [] for config in configs}
        observations: list[float] = []  # the metrics child's observation over its request
        for number in range(1, rounds + 1):
            for config in rotated(configs, number):
                measured = run_child(workdir, config, seeded, requests, backends)
                samples[config].append(measured["cpu_per_request"])
                if "observation" in measured:
                    observations.append(measured["observation"] / measured["cpu_per_request"])
            print(
                f"round {number} of {rounds}: "
                + ", ".join(f"{c} {samples[c][-1] * 1e6:.0f}" for c in configs),
                flush=True,
            )
        met = report(samples)
        share = statistics.median(observations)
        print(
            f"metrics, timed alone: the observation is {share:.2%} of its request's CPU "
            f"(median of {len(observations)} rounds)"
        )
        return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
