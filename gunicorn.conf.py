"""gunicorn's settings for the web process: the Procfile and the image start it with these.

Sync workers, one request at a time each, measured against threads with
bench/api_load.py (2 workers, PostgreSQL and Redis on one 2-core host): the same
throughput on job status, 1.7x on the list, and a p99 at 8 connections of 47 ms
against 320 ms with 4 threads per worker, whose requests wait on one another for
the interpreter lock. Concurrency comes from processes: ``WEB_CONCURRENCY``
(gunicorn's own variable) defaults to 2 per core + 1. Put a proxy that buffers
slow clients (nginx, an ingress) in front, as sync workers expect.

Metrics: every worker writes to ``PROMETHEUS_MULTIPROC_DIR`` (default
``$VEXXY_DATA_DIR/metrics``, set here, in the master, before any worker imports
prometheus_client), so that ``/metrics`` from any worker shows the sum of all.
"""

import multiprocessing
import os
from pathlib import Path
from typing import Any

from reliability.metrics.multiproc import (
    fold_dead_process_files,
    mark_process_dead,
    use_multiproc_dir,
)

workers = int(os.environ.get("WEB_CONCURRENCY", 2 * multiprocessing.cpu_count() + 1))
worker_class = "sync"
threads = 1
timeout = 60
# gunicorn 27's control socket (gunicornc) defaults to one path per user, shared by every
# gunicorn that user runs; nothing here uses it, and a read-only root has no home to put it in.
control_socket_disable = True

# The same default as vexxy/settings.py's DATA_DIR.
_data_dir = Path(os.environ.get("VEXXY_DATA_DIR", Path(__file__).resolve().parent / "var"))
use_multiproc_dir(_data_dir / "metrics")


def on_starting(server: Any) -> None:
    """Fold the metrics files of exited processes into the archive (live ones untouched)."""
    fold_dead_process_files()


def child_exit(server: Any, worker: Any) -> None:
    """A worker that exited keeps its counters in the sum, but not its live gauges."""
    mark_process_dead(worker.pid)
