"""Prometheus metrics of the reliability layer, and the ``/metrics`` scrape.

- :mod:`.multiproc` — the shared directory of prometheus-client's multiprocess mode
  (no prometheus import: safe to use before the environment is settled);
- :mod:`.definitions` — the metrics this app records, and cheap helpers to record them;
- :mod:`.collectors` — values read at scrape time (circuit breakers, worker heartbeat),
  and the project's own collectors from ``METRICS_COLLECTORS``;
- :mod:`.access` and :mod:`.views` — who may scrape, and the view.

Importing this package imports nothing of prometheus-client.
"""
