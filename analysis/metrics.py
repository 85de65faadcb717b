"""Prometheus metrics of jobs, the Kubernetes API and VEX documents (names: issue 14).

Counters and histograms are plain ``prometheus_client`` objects: in the default
registry, or, when ``PROMETHEUS_MULTIPROC_DIR`` is set before this module is
imported, in that directory's files, which the scrape aggregates. Job events are
counted when their transaction commits, so that a rolled-back import counts nothing.
:class:`JobCollector` reads the database at scrape time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import parse_qs, urlsplit

from django.db import transaction
from django.utils import timezone
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from analysis.models import AnalysisJob
    from analysis.sandbox.slots import Usage

T = TypeVar("T")

logger = logging.getLogger(__name__)

JOBS_SUBMITTED = Counter(
    "vexxy_jobs_submitted", "Jobs accepted, by profile and origin.", ["profile", "origin"]
)
JOBS_COMPLETED = Counter("vexxy_jobs_completed", "Jobs that completed.", ["profile"])
JOBS_FAILED = Counter("vexxy_jobs_failed", "Jobs that failed.", ["profile", "error_code"])
JOB_DURATION = Histogram(
    "vexxy_job_duration_seconds",
    "Started to finished, of completed and failed jobs.",
    ["profile"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 7200),
)
JOB_PHASE_DURATION = Histogram(
    "vexxy_job_phase_duration_seconds",
    "Each sandbox pipeline phase.",
    ["phase"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600),
)
QUOTA_REFUSALS = Counter("vexxy_quota_refusals", "Submissions refused by a quota.", ["quota_type"])
KUBERNETES_REQUESTS = Counter(
    "vexxy_kubernetes_requests",
    "Kubernetes API requests sent, by verb, resource and HTTP status ('error': no response).",
    ["verb", "resource", "status"],
)
KUBERNETES_REQUEST_DURATION = Histogram(
    "vexxy_kubernetes_request_duration_seconds",
    "Kubernetes API requests, until the response's headers.",
    ["verb", "resource"],
)
SANDBOX_OBJECTS_LEFT = Gauge(
    "vexxy_sandbox_objects_left",
    "Sandbox objects the last reconciler run found orphaned (deleted or not).",
    multiprocess_mode="mostrecent",
)
VEX_STATEMENTS_PER_JOB = Histogram(
    "vexxy_vex_statements_per_job",
    "Statements of each status in one generated VEX document.",
    ["status"],
    buckets=(0, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 100000),
)
VEX_BUILD_DURATION = Histogram(
    "vexxy_vex_build_duration_seconds",
    "Building one job's results and VEX document.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


def _on_commit(action: Callable[[], None]) -> None:
    """Now outside a transaction; after the commit inside one (never if it rolls back)."""
    transaction.on_commit(action, robust=True)


# -- jobs ----------------------------------------------------------------------------------


def job_submitted(job: AnalysisJob) -> None:
    profile, origin = str(job.profile), str(job.origin)
    _on_commit(lambda: JOBS_SUBMITTED.labels(profile=profile, origin=origin).inc())


def job_finished(job: AnalysisJob) -> None:
    """A job that just became complete or failed (its fields as written)."""
    from analysis.status import JobStatus

    profile, status, error_code = str(job.profile), str(job.status), job.error_code or ""
    duration = _seconds_between(job.started_at, job.completed_at)

    def count() -> None:
        if status == JobStatus.COMPLETE:
            JOBS_COMPLETED.labels(profile=profile).inc()
        else:
            JOBS_FAILED.labels(profile=profile, error_code=error_code or "UNKNOWN").inc()
        if duration is not None:
            JOB_DURATION.labels(profile=profile).observe(duration)

    _on_commit(count)


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None or not isinstance(end, datetime):
        return None
    return max(0.0, (end - start).total_seconds())


def phase_finished(phase: str, seconds: float) -> None:
    JOB_PHASE_DURATION.labels(phase=phase).observe(max(0.0, seconds))


def quota_refused(quota_type: str) -> None:
    QUOTA_REFUSALS.labels(quota_type=quota_type).inc()


# -- VEX -----------------------------------------------------------------------------------


def vex_built(seconds: float) -> None:
    VEX_BUILD_DURATION.observe(seconds)


def vex_recorded(statement_counts: Mapping[str, int], statuses: Iterable[str]) -> None:
    """One generated document: an observation per status, 0 for the statuses it lacks."""
    counts = {status: int(statement_counts.get(status, 0)) for status in statuses}
    counts.update({s: int(n) for s, n in statement_counts.items() if s not in counts})

    def observe() -> None:
        for status, count in counts.items():
            VEX_STATEMENTS_PER_JOB.labels(status=status).observe(count)

    _on_commit(observe)


# -- Kubernetes ----------------------------------------------------------------------------

_VERBS = {"POST": "create", "DELETE": "delete", "PATCH": "patch", "PUT": "update"}


def kubernetes_request(method: str, url: str, status: int | None, seconds: float) -> None:
    """One HTTP request to the API server; ``status`` None when no response came."""
    verb, resource = classify_request(method, url)
    KUBERNETES_REQUESTS.labels(
        verb=verb, resource=resource, status="error" if status is None else str(status)
    ).inc()
    KUBERNETES_REQUEST_DURATION.labels(verb=verb, resource=resource).observe(seconds)


def classify_request(method: str, url: str) -> tuple[str, str]:
    """(verb, resource plural) of a Kubernetes API request, from its method and URL.

    ``/api/v1/namespaces/ns/pods/name/log`` is a ``get`` of ``pods``; a GET of a
    collection is a ``list``, or a ``watch`` with ``watch=true``; ``/version`` is
    ``version``; discovery paths (``/apis/apps/v1``) are ``discovery``.
    """
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if segments[:1] == ["api"]:
        rest = segments[2:]
    elif segments[:1] == ["apis"]:
        rest = segments[3:]
    else:
        return _verb(method, named=True, query=parts.query), (segments or ["root"])[0]
    if not rest:
        return _verb(method, named=True, query=parts.query), "discovery"
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]  # a namespaced resource
    return _verb(method, named=len(rest) > 1, query=parts.query), rest[0]


def _verb(method: str, *, named: bool, query: str) -> str:
    method = method.upper()
    if method != "GET":
        return _VERBS.get(method, method.lower())
    if named:
        return "get"
    watch = parse_qs(query).get("watch", [""])[0].lower()
    return "watch" if watch in ("true", "1") else "list"


# -- reconciler ----------------------------------------------------------------------------


def sandbox_objects_left(count: int) -> None:
    SANDBOX_OBJECTS_LEFT.set(count)


# -- read at scrape time -------------------------------------------------------------------

UNDISPATCHED = "vexxy_jobs_undispatched"
OLDEST_HEARTBEAT = "vexxy_running_jobs_oldest_heartbeat_age_seconds"
SLOTS_IN_USE = "vexxy_sandbox_slots_in_use"
SLOTS_LIMIT = "vexxy_sandbox_slots_limit"
WAITING_FOR_SLOT = "vexxy_jobs_waiting_for_sandbox_slot"

# name -> help; each is one unlabelled gauge read from the database at scrape time.
_GAUGES = {
    UNDISPATCHED: "Queued jobs whose task was never published or was lost (as "
    "dispatch_pending_jobs sees them).",
    OLDEST_HEARTBEAT: "Age of the oldest heartbeat among running and analyzing jobs; 0 when none.",
    SLOTS_IN_USE: "Sandbox slots held by running jobs, across all workers.",
    SLOTS_LIMIT: "MAX_CONCURRENT_SANDBOXES: sandboxes allowed alive at once.",
    WAITING_FOR_SLOT: "Queued jobs whose last try found every sandbox slot taken.",
}


class JobCollector(Collector):
    """Database-backed job gauges, for ``RELIABILITY["METRICS_COLLECTORS"]``.

    A few indexed queries per scrape. A failing query yields no sample, and one WARNING
    until it succeeds again (per collector instance).
    """

    def __init__(self) -> None:
        self._failing: set[str] = set()

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(name, text) for name, text in _GAUGES.items()]

    def collect(self) -> Iterable[GaugeMetricFamily]:
        reads = {
            UNDISPATCHED: _undispatched,
            OLDEST_HEARTBEAT: _oldest_heartbeat_age,
            **self._read_slots(),
        }
        for name, query in reads.items():
            value = self._read(name, query)
            if value is not None:
                family = GaugeMetricFamily(name, _GAUGES[name])
                family.add_metric([], value)
                yield family

    def _read_slots(self) -> dict[str, Callable[[], float]]:
        usage = self._read(SLOTS_IN_USE, _slot_usage)
        if usage is None:
            return {}
        return {
            SLOTS_IN_USE: lambda: float(usage.in_use),
            SLOTS_LIMIT: lambda: float(usage.limit),
            WAITING_FOR_SLOT: lambda: float(usage.waiting),
        }

    def _read(self, name: str, query: Callable[[], T]) -> T | None:
        try:
            value = query()
        except Exception as error:
            if name not in self._failing:
                self._failing.add(name)
                logger.warning(
                    "Metric %s not read: %s",
                    name,
                    type(error).__name__,
                    extra={"metric": name, "error_type": type(error).__name__},
                )
            return None
        self._failing.discard(name)
        return value


def _slot_usage() -> Usage:
    from analysis.sandbox.slots import usage

    return usage()


def _undispatched() -> float:
    from analysis.dispatch import undispatched_jobs

    return float(undispatched_jobs().count())


def _oldest_heartbeat_age() -> float:
    from django.db.models import Min

    from analysis.models import AnalysisJob
    from analysis.status import RUNNING

    oldest = AnalysisJob.objects.filter(status__in=RUNNING).aggregate(oldest=Min("heartbeat_at"))
    if oldest["oldest"] is None:
        return 0.0
    return max(0.0, (timezone.now() - oldest["oldest"]).total_seconds())
