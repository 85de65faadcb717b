"""``/metrics``: the Prometheus text exposition, summed over every process of the host.

In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set) the values are those of
all files in the directory — every gunicorn worker, every Celery process; without
it, this process's own registry. Either way the scrape-time collectors are added.
A plain Django view: no DRF, no throttling, no database unless a collector reads it.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from ..envelope import error_response
from .access import refusal
from .collectors import scrape_collectors
from .multiproc import multiproc_dir


class _SharedDirectory:
    """Every process's files; read again if a starting program folded one meanwhile."""

    def __init__(self, directory: str) -> None:
        self.collector = MultiProcessCollector(None, path=directory)

    def collect(self) -> Iterator[Metric]:
        try:
            return iter(list(self.collector.collect()))
        except FileNotFoundError:  # fold_dead_process_files removed a file after the glob
            return iter(list(self.collector.collect()))


class _ProcessRegistry:
    """This process's default registry, as one collector of the scrape's registry."""

    def collect(self) -> Iterator[Metric]:
        return REGISTRY.collect()


def scrape_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    directory = multiproc_dir()
    if directory is not None:
        registry.register(_SharedDirectory(str(directory)))
    else:
        registry.register(_ProcessRegistry())
    for collector in scrape_collectors():
        registry.register(collector)
    return registry


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    error = refusal(request)
    if error is not None:
        return error_response(request, error)
    # The text format by default, OpenMetrics when the scraper asks for it (Prometheus does).
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(scrape_registry()), content_type=content_type)
