"""OpenTelemetry: one trace from the request to the cluster; nothing at all when it is off.

OpenTelemetry lets a process set its tracer provider once, so this module configures tracing
once (in-memory exporter, synchronous) for all its tests and undoes the instrumentation after
them. Whether "off" costs nothing is checked in a fresh interpreter.
"""

from __future__ import annotations

import http.server
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
from celery import signals
from django.db import connections
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from analysis.dispatch import PUBLISHED, publish
from analysis.models import AnalysisJob
from tests.conftest import make_job
from tests.support.sandbox_world import IMAGE_DIGEST, IMAGE_REF, SandboxWorld
from tests.support.settings import small_pipeline_budgets
from vexxy import tracing

REPO = Path(__file__).resolve().parent.parent
SUBMIT = "/api/v1/analysis/submit"
PHASES = {"preflight", "deploy", "wait_ready", "observe", "collect", "build", "cleanup"}
REQUEST_ID = tracing.REQUEST_ID_ATTRIBUTE


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure_tracing("web", exporter=exporter)
    connections.close_all()  # the next queries open connections through the instrumented driver
    try:
        yield exporter
    finally:
        tracing.uninstrument()
        trace.get_tracer_provider().shutdown()
        _forget_tracer_provider()
        connections.close_all()


def _forget_tracer_provider() -> None:
    """What opentelemetry's own test utilities do, so later tests run untraced again."""
    from opentelemetry.util._once import Once

    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE = Once()


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    exporter.clear()
    yield exporter
    exporter.clear()


@pytest.fixture
def pipeline_settings(settings):
    """The eager task runs the pipeline on the real clock: nothing may have to wait."""
    small_pipeline_budgets(settings, settle_seconds=0)


@pytest.fixture
def world_on_task_start(sandbox_ready):
    """When the job's task starts, its pod is up and Kubescape has finished with it."""

    def preseed(args=None, **_: object) -> None:
        SandboxWorld(sandbox_ready, AnalysisJob.objects.get(pk=args[0])).preseed()

    signals.task_prerun.connect(preseed, weak=False)
    yield sandbox_ready
    signals.task_prerun.disconnect(preseed)


def by_name(spans: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    """Names of the span's parents, nearest first."""
    index = {s.context.span_id: s for s in spans}
    names = []
    while span.parent is not None and span.parent.span_id in index:
        span = index[span.parent.span_id]
        names.append(span.name)
    return names


@pytest.mark.django_db(transaction=True)
def test_one_submit_is_one_trace_from_request_to_cluster(
    spans, api, world_on_task_start, pipeline_settings, log_records
):
    spans.clear()  # the fixtures' own queries
    response = api.post(
        SUBMIT,
        {
            "image_ref": IMAGE_REF,
            "image_digest": IMAGE_DIGEST,
            "profile": "custom",
            "config": {"analysis_duration": 90},
        },
        format="json",
    )

    finished = spans.get_finished_spans()
    assert response.status_code == 201, response.json()
    job = AnalysisJob.objects.get(pk=response.json()["job_id"])
    assert job.status == "complete", (job.error_code, job.error_message)
    request_id = response["X-Request-ID"]

    (request,) = [s for s in finished if s.kind == SpanKind.SERVER]
    assert request.parent is None
    assert {s.context.trace_id for s in finished} == {request.context.trace_id}
    (task,) = by_name(finished, "run/analysis.run_analysis")
    assert ancestors(task, finished) == [request.name]
    phases = by_name(finished, "phase ")
    assert sorted(s.attributes["vexxy.phase"] for s in phases) == sorted(PHASES)
    assert all(ancestors(p, finished)[:2] == [task.name, request.name] for p in phases)
    kube_calls = [
        s
        for s in finished
        if s.kind == SpanKind.CLIENT and s.instrumentation_scope.name.endswith("urllib3")
    ]
    (deploy,) = [
        s
        for s in kube_calls
        if (s.attributes["http.method"], s.attributes["http.url"].rsplit("/", 1)[-1])
        == ("POST", "deployments")
    ]
    assert deploy.attributes["http.url"].startswith(world_on_task_start.url)
    assert "phase deploy" in ancestors(deploy, finished)
    assert any("phase cleanup" in ancestors(s, finished) for s in kube_calls)
    queries = [
        s for s in finished if "db.system" in s.attributes or "db.system.name" in s.attributes
    ]
    assert any(ancestors(q, finished) == [request.name] for q in queries)  # the job's INSERT
    assert any("phase build" in ancestors(q, finished) for q in queries)
    assert {s.attributes.get(REQUEST_ID) for s in finished} == {request_id}

    trace_id = format(request.context.trace_id, "032x")
    completed = [r for r in log_records if r.getMessage() == f"Job {job.pk} complete"]
    assert [(r.request_id, r.trace_id) for r in completed] == [(request_id, trace_id)]
    assert {r.trace_id for r in log_records if r.request_id == request_id} == {trace_id}


@pytest.mark.django_db
def test_an_incoming_traceparent_makes_the_request_part_of_the_callers_trace(spans, api):
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

    response = api.get(
        "/api/v1/analysis",
        headers={"traceparent": f"00-{caller_trace}-{caller_span}-01", "X-Request-ID": "tp-1"},
    )

    assert response.status_code == 200
    (request,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert format(request.context.trace_id, "032x") == caller_trace
    assert format(request.parent.span_id, "016x") == caller_span
    assert request.parent.is_remote
    assert request.attributes[REQUEST_ID] == "tp-1"


@pytest.mark.django_db
def test_a_published_task_carries_the_trace_to_its_worker(spans, organization, unconsumed_queue):
    job = make_job(organization)
    seen: list[dict] = []

    def capture(headers=None, **_: object) -> None:
        seen.append(dict(headers or {}))

    signals.before_task_publish.connect(capture, weak=False)  # after the instrumentation's
    try:
        with trace.get_tracer(__name__).start_as_current_span("caller") as caller:
            assert publish(job.pk) == PUBLISHED
    finally:
        signals.before_task_publish.disconnect(capture)

    (published,) = by_name(spans.get_finished_spans(), "apply_async/analysis.run_analysis")
    assert published.parent.span_id == caller.get_span_context().span_id
    assert published.context.trace_id == caller.get_span_context().trace_id
    (headers,) = seen
    _, trace_id, parent_id, _ = headers["traceparent"].split("-")
    assert (trace_id, parent_id) == (
        format(published.context.trace_id, "032x"),
        format(published.context.span_id, "016x"),
    )


def test_outgoing_http_calls_carry_the_traceparent(spans):
    received: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            received.append(self.headers.get("traceparent"))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with trace.get_tracer(__name__).start_as_current_span("caller"):
            urllib3.PoolManager().request("GET", f"http://127.0.0.1:{server.server_port}/")
    finally:
        server.shutdown()
        server.server_close()

    (call,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.CLIENT]
    (traceparent,) = received
    assert traceparent.split("-")[1:3] == [
        format(call.context.trace_id, "032x"),
        format(call.context.span_id, "016x"),
    ]


def test_log_lines_carry_the_trace_id_next_to_the_request_id(exporter):
    from reliability.correlation import correlation_scope
    from tests.support.logs import console_handler

    text, text_out = console_handler(json_lines=False)
    lines, json_out = console_handler(json_lines=True)
    log = logging.getLogger("tests.tracing")
    for handler in (text, lines):
        log.addHandler(handler)
    try:
        with correlation_scope("log-1"):
            log.warning("outside a span")
            with trace.get_tracer(__name__).start_as_current_span("work") as span:
                log.warning("inside a span")
    finally:
        for handler in (text, lines):
            log.removeHandler(handler)

    context = span.get_span_context()
    trace_id, span_id = format(context.trace_id, "032x"), format(context.span_id, "016x")
    outside, inside = text_out.getvalue().splitlines()
    assert "[log-1] outside a span" in outside
    assert f"[log-1 trace={trace_id}] inside a span" in inside
    first, second = map(json.loads, json_out.getvalue().splitlines())
    assert "trace_id" not in first
    assert "span_id" not in first
    assert (second["request_id"], second["trace_id"], second["span_id"]) == (
        "log-1",
        trace_id,
        span_id,
    )


ZERO_COST = """
import os, sys
for name in [n for n in os.environ if n.startswith("OTEL_")]:
    del os.environ[name]
os.environ["DJANGO_SETTINGS_MODULE"] = "vexxy.settings"
from vexxy.wsgi import application
from vexxy import celery
from vexxy.tracing import configure_tracing
from django.conf import settings
from django.test import Client
from opentelemetry import trace

assert configure_tracing("web") is False
Client().get("/health/live")
print(sorted(n for n in sys.modules if n.startswith("opentelemetry")))
print(any("opentelemetry" in m for m in settings.MIDDLEWARE))
print(type(trace.get_tracer_provider()).__name__)
import sqlite3
from urllib3.connectionpool import HTTPConnectionPool
print(type(sqlite3.connect).__name__, type(HTTPConnectionPool.urlopen).__name__)
"""


def test_without_otel_variables_nothing_is_loaded_nor_wrapped():
    result = subprocess.run(
        [sys.executable, "-c", ZERO_COST],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    modules, middleware, provider, wrapped = result.stdout.splitlines()[-4:]
    loaded = eval(modules)  # noqa: S307 - our own child's repr of a list of names
    assert not [m for m in loaded if m.startswith(("opentelemetry.sdk", "opentelemetry.instr"))]
    assert middleware == "False"
    assert provider == "ProxyTracerProvider"
    assert wrapped == "builtin_function_or_method function"  # not wrapt's FunctionWrapper


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
    ],
)
def test_the_standard_variables_turn_tracing_on(environ, enabled):
    assert tracing.tracing_enabled(environ) is enabled


@pytest.mark.timeout(180)
def test_a_real_worker_continues_the_publishers_trace(spans, child_env, tmp_path):
    """A solo worker traces the task (OTEL_TRACES_EXPORTER=console) as a child of its publish."""
    from reliability.correlation import correlation_scope
    from reliability.tasks import echo_request_id
    from tests.conftest import celery_app
    from tests.support.processes import WORKER_ENV, start_celery_worker

    queue = f"trace-{tmp_path.name}"
    env = {
        **child_env,
        **WORKER_ENV,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    process, output = start_celery_worker(queue, queue, env, REPO)
    previous, celery_app.conf.task_always_eager = celery_app.conf.task_always_eager, False
    try:
        with correlation_scope("worker-trace-1"):
            echo_request_id.apply_async(queue=queue)
        (published,) = by_name(spans.get_finished_spans(), "apply_async/reliability.echo")
        trace_id = format(published.context.trace_id, "032x")
        line = output.wait_for(lambda text: "echo_request_id ran" in text, 60)
        assert json.loads(line)["trace_id"] == trace_id
        printed = output._out  # the console exporter writes spans, indented JSON, to stdout
        printed.wait_for(lambda text: '"name": "run/reliability.echo_request_id"' in text, 30)
        printed.wait_for(lambda text: f'"parent_id": "0x{published.context.span_id:016x}"' in text)
        printed.wait_for(lambda text: f'"trace_id": "0x{trace_id}"' in text)
        printed.wait_for(lambda text: '"vexxy.request_id": "worker-trace-1"' in text)
    finally:
        celery_app.conf.task_always_eager = previous
        process.terminate()
        process.wait(timeout=30)
