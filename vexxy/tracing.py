"""OpenTelemetry traces from the request to the cluster, when the standard variables ask for them.

:func:`configure_tracing` runs once per process, before the first request or task: the web
process from ``vexxy/wsgi.py`` / ``vexxy/asgi.py``, each Celery worker child after the fork and
beat from ``vexxy/celery.py``. With no ``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_TRACES_EXPORTER`` it returns at once: the SDK
and the instrumentation packages are never imported, no middleware is added, nothing is
wrapped. Otherwise spans go, batched, to the OTLP/HTTP exporter configured by the standard
``OTEL_*`` variables (``OTEL_TRACES_EXPORTER=console`` prints them instead).

What is traced, by the OpenTelemetry instrumentation packages: each request (Django; an incoming
W3C ``traceparent`` is its parent), each Celery publish and task run (the message carries the
``traceparent``, so the task is a child of its publish), each Kubernetes API call (urllib3, which
the Kubernetes client uses; the call carries the ``traceparent`` on), each database query
(psycopg, sqlite3). The pipeline's phases are spans of their own (analysis/sandbox/pipeline.py).
Every span carries the correlation ID as ``vexxy.request_id``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reliability import correlation

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "vexxy-premium"
REQUEST_ID_ATTRIBUTE = "vexxy.request_id"
_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

_configured_in: int | None = None  # the pid that configured tracing; a forked child has another


def tracing_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the standard variables ask for traces (``OTEL_SDK_DISABLED=true`` says no)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return any(environ.get(name, "").strip() for name in _ENDPOINT_VARIABLES)


def configure_tracing(role: str, *, exporter: SpanExporter | None = None) -> bool:
    """Set up tracing for this process once; says whether it is on.

    ``role`` (web, worker, beat) ends the service name. ``exporter`` is for tests: spans go to
    it synchronously, whatever the variables say.
    """
    global _configured_in
    if _configured_in == os.getpid():
        return True
    if exporter is None and not tracing_enabled():
        return False
    provider = _provider(role, exporter)
    from opentelemetry import trace

    trace.set_tracer_provider(provider)
    _instrument(role, provider)
    _configured_in = os.getpid()
    logger.info("Tracing on for %s", provider.resource.attributes.get("service.name"))
    return True


def _provider(role: str, exporter: SpanExporter | None) -> TracerProvider:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_SERVICE_NAME
    # The sampler comes from OTEL_TRACES_SAMPLER, extra attributes from OTEL_RESOURCE_ATTRIBUTES.
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"{name}-{role}", "vexxy.role": role})
    )
    provider.add_span_processor(_request_id_processor())
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(_exporter_from_environment()))
    return provider


def _exporter_from_environment() -> SpanExporter:
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    # Endpoint, headers, timeout, compression: OTEL_EXPORTER_OTLP_[TRACES_]* variables.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _instrument(role: str, provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

    if role == "web":
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        # Inserts its middleware first in settings.MIDDLEWARE: before the handler loads them.
        DjangoInstrumentor().instrument(tracer_provider=provider, response_hook=_on_response)
    CeleryInstrumentor().instrument(tracer_provider=provider)
    URLLib3Instrumentor().instrument(tracer_provider=provider)
    SQLite3Instrumentor().instrument(tracer_provider=provider)
    PsycopgInstrumentor().instrument(tracer_provider=provider, skip_dep_check=True)


def uninstrument() -> None:
    """Undo :func:`_instrument` (tests); the tracer provider stays, as OpenTelemetry requires."""
    global _configured_in
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

    for instrumentor in (
        DjangoInstrumentor(),
        CeleryInstrumentor(),
        URLLib3Instrumentor(),
        SQLite3Instrumentor(),
        PsycopgInstrumentor(),
    ):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    _configured_in = None


def _on_response(span: Any, request: Any, response: Any) -> None:
    """The request span starts before RequestContextMiddleware picks the ID: set it at the end."""
    request_id = getattr(request, "request_id", None) or response.get(correlation.HEADER)
    if request_id and span.is_recording():
        span.set_attribute(REQUEST_ID_ATTRIBUTE, request_id)


def _request_id_processor() -> SpanProcessor:
    """Puts the current correlation ID on every span as it starts: tasks, phases, calls, queries."""
    from opentelemetry.sdk.trace import SpanProcessor

    class RequestIdSpanProcessor(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            request_id = correlation.get_request_id()
            if request_id:
                span.set_attribute(REQUEST_ID_ATTRIBUTE, request_id)

    return RequestIdSpanProcessor()
