"""``/metrics`` on a port of a process that serves no HTTP: a Celery worker on a host of its own.

The same view as the web's, with the same protection (loopback, allowlist, bearer
token), so the scrape is the same: the sum of every process writing to this host's
``PROMETHEUS_MULTIPROC_DIR``, plus the scrape-time collectors. Only ``/metrics`` is
served; a thread per scrape, each closing its database connections when done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.core.handlers.wsgi import WSGIRequest
from django.db import connections

from ..settings import reliability_settings
from .views import metrics

logger = logging.getLogger("reliability.metrics")

StartResponse = Callable[..., Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)


def metrics_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    if environ.get("PATH_INFO") != "/metrics":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Only /metrics is served here.\n"]
    try:
        response = metrics(WSGIRequest(environ))
    finally:
        connections.close_all()  # this thread's: a collector may have read the database
    start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
    return [response.content]


def serve_metrics(port: int, host: str = "") -> WSGIServer:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread; returns the server."""
    server = make_server(host, port, metrics_app, server_class=_Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True).start()
    logger.info(
        "Serving /metrics on port %d",
        server.server_port,
        extra={"metrics_port": server.server_port},
    )
    return server


def serve_worker_metrics(**_: Any) -> WSGIServer | None:
    """For Celery's ``worker_ready``: serve when ``METRICS_WORKER_PORT`` is set."""
    port = reliability_settings.METRICS_WORKER_PORT
    if not port:
        return None
    return serve_metrics(int(port), reliability_settings.METRICS_WORKER_HOST)
