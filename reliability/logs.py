"""Structured logging: the request-ID filter, formatters and the LOGGING dict.

Production writes one JSON object per line (python-json-logger); development
writes readable text. Both carry the correlation ID of the current context, and
both go to stderr in every process: a command's stdout is for its result.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest
from pythonjsonlogger.json import JsonFormatter

from .correlation import get_request_id
from .exceptions import utc_timestamp

try:  # the project traces with OpenTelemetry; this app works without it
    from opentelemetry.trace import get_current_span
except ImportError:  # pragma: no cover - opentelemetry-api is a dependency of the project
    get_current_span = None

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record that passes a handler, and ``trace_id`` and
    ``span_id`` when an OpenTelemetry span is current (only when tracing is on).

    Attached to handlers, not loggers, so that records from third-party loggers
    (Django, Celery, urllib3) carry the ID too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = get_request_id() or "-"
        if get_current_span is not None and not getattr(record, "trace_id", None):
            span = get_current_span().get_span_context()
            if span.is_valid:
                record.trace_id = format(span.trace_id, "032x")
                record.span_id = format(span.span_id, "016x")
        return True


# C0 and C1 controls, DEL and the Unicode line separators: what could end or rewrite a line.
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def escape_controls(text: str) -> str:
    """``text`` on one line: every control character written as its escape."""
    return text.translate(_CONTROLS)


class TextFormatter(logging.Formatter):
    """Readable lines that a request cannot forge: the message's control characters are escaped.

    Paths, queries and headers reach messages; an encoded newline in a URL must not
    start a second, invented log line. Tracebacks keep their line breaks.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        message, request_id = record.message, getattr(record, "request_id", None)
        record.message = escape_controls(message + _request_line(record))
        trace_id = getattr(record, "trace_id", None)
        if trace_id:  # [request_id trace=…]; unchanged when no span is current
            record.request_id = f"{request_id} trace={trace_id}"
        try:
            return super().formatMessage(record)
        finally:
            record.message = message
            if trace_id:
                record.request_id = request_id


def _request_line(record: logging.LogRecord) -> str:
    """`` GET /path 200 3.2ms`` for a record of a finished request; JSON lines have the fields."""
    try:
        return f" {record.method} {record.path} {record.status} {record.duration_ms}ms"
    except AttributeError:
        return ""


class JsonLineFormatter(JsonFormatter):
    """JSON lines whose serialisation never fails on an odd ``extra`` value."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault(
            "rename_fields", {"asctime": "timestamp", "levelname": "level", "name": "logger"}
        )
        kwargs.setdefault("json_default", _safe_default)
        kwargs.setdefault("json_serializer", _safe_dumps)
        super().__init__(*args, **kwargs)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_timestamp(datetime.fromtimestamp(record.created, UTC))

    def process_log_record(self, log_record: dict[str, Any]) -> dict[str, Any]:
        """Django puts the request on its records; its ``repr`` would log the whole query string."""
        request = log_record.get("request")
        if isinstance(request, HttpRequest):
            log_record["request"] = f"{request.method} {request.path}"
        return super().process_log_record(log_record)


def _safe_default(value: Any) -> Any:
    try:
        return str(value)
    except Exception:  # a broken __str__ must not lose the log line
        return f"<unserialisable {type(value).__name__}>"


def _safe_dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that yields strict JSON for any ``extra``: odd keys and NaN included."""
    kwargs["allow_nan"] = False
    try:
        return json.dumps(value, **kwargs)
    except (TypeError, ValueError):
        return json.dumps(_plain(value), **kwargs)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key if isinstance(key, str | int | bool) or key is None else _safe_default(key): _plain(
                item
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def build_logging_config(*, json_lines: bool, level: str) -> dict[str, Any]:
    """The ``LOGGING`` setting: one stderr handler, the ID filter on it."""
    formatter: dict[str, Any]
    if json_lines:
        formatter = {"()": "reliability.logs.JsonLineFormatter", "fmt": JSON_FIELDS}
    else:
        formatter = {"()": "reliability.logs.TextFormatter", "format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "reliability.logs.RequestIdFilter"}},
        "formatters": {"default": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # The request_finished record below replaces Django's own request lines.
            "django.server": {"level": "WARNING"},
            "django.request": {"level": "ERROR"},
            "django.db.backends": {"level": "INFO"},
            "celery": {"level": level},
        },
    }
