"""/metrics after real traffic: counters move by exactly what happened; scrapes are protected.

Runs in the full project and in the bare one (the reliability app alone). The
process has no multiprocess directory here, so the scrape is this process's
registry plus the scrape-time collectors; tests compare before and after.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from django.test import Client
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from reliability import circuit
from reliability.exceptions import ServiceUnavailableError
from reliability.heartbeats import record_heartbeat
from reliability.metrics import multiproc
from reliability.retry import RetryConfig, retry_with_backoff
from tests.support.settings import override_reliability

pytestmark = pytest.mark.django_db

Samples = dict[tuple[str, frozenset], float]
OUTSIDE = "203.0.113.7"
TOKEN = "s3cret-metrics-token"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def scrape(client: Client, **headers: str) -> Samples:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.content.decode())


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def assert_envelope(response, status: int, code: str, message: str) -> None:
    assert response.status_code == status
    body = response.json()
    assert body == {
        "error": code,
        "message": message,
        "details": {},
        "timestamp": body["timestamp"],
        "request_id": response["X-Request-ID"],
    }
    assert TIMESTAMP.fullmatch(body["timestamp"])


# -- HTTP ------------------------------------------------------------------------------


def test_requests_are_counted_by_route_method_and_status_class(client):
    before = scrape(client)
    for _ in range(5):
        assert client.get("/livez").status_code == 200
    assert client.head("/livez").status_code == 200
    after = scrape(client)

    livez = {"route": "livez", "method": "GET", "status_class": "2xx"}
    assert moved(before, after, "vexxy_http_requests_total", **livez) == 5
    assert moved(before, after, "vexxy_http_requests_total", **{**livez, "method": "HEAD"}) == 1
    assert (
        moved(
            before, after, "vexxy_http_request_duration_seconds_count", route="livez", method="GET"
        )
        == 5
    )
    # The first scrape is counted by the time of the second, not by its own.
    assert (
        moved(
            before,
            after,
            "vexxy_http_requests_total",
            route="metrics",
            method="GET",
            status_class="2xx",
        )
        == 1
    )


def test_unknown_url_is_unmatched_and_its_error_code_counted(client):
    before = scrape(client)
    response = client.get(f"/livez/{uuid.uuid4().hex}")  # a raw path never becomes a label
    after = scrape(client)

    assert response.status_code == 404
    code = response.json()["error"]
    assert (
        moved(
            before,
            after,
            "vexxy_http_requests_total",
            route="unmatched",
            method="GET",
            status_class="4xx",
        )
        == 1
    )
    assert moved(before, after, "vexxy_http_errors_total", error_code=code, status_class="4xx") == 1
    assert not any(uuid_label for uuid_label in after if "livez/" in str(uuid_label[1]))


def test_an_unusual_method_is_one_label(client):
    before = scrape(client)
    client.generic("BREW", "/livez")
    after = scrape(client)
    assert (
        moved(
            before,
            after,
            "vexxy_http_requests_total",
            route="livez",
            method="OTHER",
            status_class="4xx",
        )
        == 1
    )


# -- reliability layer -------------------------------------------------------------------


@pytest.fixture
def breaker(clean_cache) -> Iterator[circuit.CircuitBreaker]:
    name = f"metrics-{uuid.uuid4().hex[:8]}"
    yield circuit.get_breaker(
        name, failure_threshold=2, recovery_timeout=300.0, expected_exceptions=(OSError,)
    )
    circuit.forget_breakers()


def fail() -> None:
    raise ConnectionError("down")


def test_a_breaker_opened_by_failures_shows_open_and_one_transition(client, breaker):
    before = scrape(client)
    assert value(before, "vexxy_circuit_breaker_open", breaker=breaker.name) == 0
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(fail)
    with pytest.raises(ServiceUnavailableError):  # the failed call through the open breaker
        breaker.call(fail)
    after = scrape(client)

    assert value(after, "vexxy_circuit_breaker_open", breaker=breaker.name) == 1
    transitions = {
        state: moved(
            before,
            after,
            "vexxy_circuit_breaker_transitions_total",
            breaker=breaker.name,
            state=state,
        )
        for state in ("open", "half_open", "closed")
    }
    assert transitions == {"open": 1, "half_open": 0, "closed": 0}


def test_half_open_probe_and_close_are_transitions(client, clean_cache):
    now = [1_000_000.0]
    name = f"metrics-{uuid.uuid4().hex[:8]}"
    breaker = circuit.get_breaker(
        name, failure_threshold=1, recovery_timeout=10.0, clock=lambda: now[0]
    )
    try:
        before = scrape(client)
        with pytest.raises(ConnectionError):
            breaker.call(fail)
        now[0] += 11
        assert breaker.call(lambda: "ok") == "ok"
        after = scrape(client)
    finally:
        circuit.forget_breakers()
    assert value(after, "vexxy_circuit_breaker_open", breaker=name) == 0
    for state in ("open", "half_open", "closed"):
        assert (
            moved(
                before, after, "vexxy_circuit_breaker_transitions_total", breaker=name, state=state
            )
            == 1
        ), state


def flaky(failures: int, error: BaseException | None = None):
    calls = {"n": 0}
    attempts = RetryConfig(max_attempts=3, initial_delay=0.0, max_delay=0.0)

    name = f"test-operation-{uuid.uuid4().hex[:8]}"

    @retry_with_backoff(config=attempts, sleep=lambda _: None, operation=name)
    def operation() -> str:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise ConnectionError("flaky")
        if error is not None:
            raise error
        return "ok"

    return name, operation


def retries(before: Samples, after: Samples, operation: str) -> dict[str, float]:
    return {
        outcome: moved(before, after, "vexxy_retries_total", operation=operation, outcome=outcome)
        for outcome in ("retried", "recovered", "exhausted")
    }


def test_retries_recovered(client):
    name, operation = flaky(2)
    before = scrape(client)
    assert operation() == "ok"
    after = scrape(client)
    assert retries(before, after, name) == {
        "retried": 2,
        "recovered": 1,
        "exhausted": 0,
    }


def test_retries_exhausted(client):
    name, operation = flaky(5)
    before = scrape(client)
    with pytest.raises(ConnectionError):
        operation()
    after = scrape(client)
    assert retries(before, after, name) == {
        "retried": 2,
        "recovered": 0,
        "exhausted": 1,
    }


class NotFound(Exception):
    status = 404


def test_a_refusal_after_a_retry_is_exhausted_and_a_first_success_counts_nothing(client):
    (refused_name, refused), (fine_name, fine) = flaky(1, NotFound()), flaky(0)
    before = scrape(client)
    with pytest.raises(NotFound):
        refused()
    assert fine() == "ok"
    after = scrape(client)
    assert retries(before, after, refused_name) == {
        "retried": 1,
        "recovered": 0,
        "exhausted": 1,
    }
    assert retries(before, after, fine_name) == {
        "retried": 0,
        "recovered": 0,
        "exhausted": 0,
    }


def test_each_health_check_is_counted_with_its_result(client, clean_cache):
    before = scrape(client)
    body = client.get("/health").json()
    after = scrape(client)
    assert body["checks"]
    for name, check in body["checks"].items():
        assert (
            moved(before, after, "vexxy_health_checks_total", check=name, status=check["status"])
            == 1
        ), name


def test_heartbeat_age_is_absent_until_a_worker_beats(client, clean_cache):
    assert ("vexxy_celery_heartbeat_age_seconds", frozenset()) not in scrape(client)
    record_heartbeat("worker@test", at=time.time() - 42)
    age = value(scrape(client), "vexxy_celery_heartbeat_age_seconds")
    assert 42 <= age < 100


# -- project collectors ------------------------------------------------------------------


class WidgetCollector:
    def collect(self):
        family = GaugeMetricFamily("test_widgets", "Widgets.")
        family.add_metric([], 7)
        yield family


class CountedCollector:
    made = 0

    def __init__(self) -> None:
        type(self).made += 1

    def collect(self):
        yield GaugeMetricFamily("test_counted_collectors_made", "Instances made.", value=self.made)


def test_a_configured_collector_is_made_once_and_collected_at_every_scrape(client, settings):
    override_reliability(settings, METRICS_COLLECTORS=[f"{__name__}.CountedCollector"])
    first, second = scrape(client), scrape(client)
    assert value(first, "test_counted_collectors_made") == 1
    assert value(second, "test_counted_collectors_made") == 1
    assert CountedCollector.made == 1


def broken_collector():
    raise RuntimeError("database down")


def test_configured_collectors_are_scraped_and_a_failing_one_is_left_out(client, settings, caplog):
    caplog.set_level("WARNING", logger="reliability.metrics")
    override_reliability(
        settings,
        METRICS_COLLECTORS=[f"{__name__}.broken_collector", f"{__name__}.WidgetCollector"],
    )
    samples = scrape(client)
    assert value(samples, "test_widgets") == 7
    assert ("vexxy_http_requests_total" in {name for name, _ in samples}) is True
    assert any(
        r.getMessage() == f"Metrics collector {__name__}.broken_collector failed"
        for r in caplog.records
    )


# -- protection ----------------------------------------------------------------------------


def test_loopback_needs_nothing(client):
    assert client.get("/metrics").status_code == 200


def test_outside_address_without_a_token_setting_is_forbidden(client):
    response = client.get("/metrics", REMOTE_ADDR=OUTSIDE)
    assert_envelope(response, 403, "FORBIDDEN", "This address may not read the metrics.")
    assert response["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"


def test_outside_address_without_its_token_is_asked_for_it(client, settings):
    override_reliability(settings, METRICS_TOKEN=TOKEN)
    response = client.get("/metrics", REMOTE_ADDR=OUTSIDE)
    assert_envelope(response, 401, "UNAUTHORIZED", "Metrics need a bearer token from this address.")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}"])
def test_a_wrong_token_is_refused(client, settings, header):
    override_reliability(settings, METRICS_TOKEN=TOKEN)
    response = client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION=header)
    expected = (401, "UNAUTHORIZED") if header.startswith("Basic") else (403, "FORBIDDEN")
    assert response.status_code == expected[0]
    assert response.json()["error"] == expected[1]


def test_the_right_token_is_let_in(client, settings):
    override_reliability(settings, METRICS_TOKEN=TOKEN)
    assert scrape(client, REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION=f"bearer {TOKEN}")


def test_a_token_is_not_accepted_when_none_is_configured(client):
    response = client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 403


def test_allowed_networks_are_let_in(client, settings):
    override_reliability(settings, METRICS_ALLOWED_NETWORKS=["203.0.113.0/24"])
    assert scrape(client, REMOTE_ADDR=OUTSIDE)
    assert client.get("/metrics", REMOTE_ADDR="198.51.100.1").status_code == 403


def test_a_local_proxy_forwarding_an_outsider_gets_no_loopback_privilege(client, settings):
    response = client.get("/metrics", HTTP_X_FORWARDED_FOR=OUTSIDE)
    assert response.status_code == 403
    # A trusted proxy: the forwarded address is the client, judged by itself.
    override_reliability(settings, TRUSTED_PROXIES=["127.0.0.1"])
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR=OUTSIDE).status_code == 403
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 200


def test_refused_scrapes_are_counted_as_errors(client):
    before = scrape(client)
    client.get("/metrics", REMOTE_ADDR=OUTSIDE)
    after = scrape(client)
    assert (
        moved(before, after, "vexxy_http_errors_total", error_code="FORBIDDEN", status_class="4xx")
        == 1
    )
    assert (
        moved(
            before,
            after,
            "vexxy_http_requests_total",
            route="metrics",
            method="GET",
            status_class="4xx",
        )
        == 1
    )


# -- the multiprocess directory ---------------------------------------------------------------


def write_values(path, **values: float) -> None:
    mmap = MmapedDict(str(path))
    for name, number in values.items():
        mmap.write_value(mmap_key(name, name, ["k"], ["v"], "help"), number, 0.0)
    mmap.close()


def totals(directory) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in MultiProcessCollector(None, path=str(directory)).collect()
        for sample in family.samples
    }


def test_files_of_exited_processes_are_folded_and_live_ones_kept(tmp_path):
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    write_values(tmp_path / "counter_archive.db", jobs_total=5)
    write_values(tmp_path / f"counter_{exited.pid}.db", jobs_total=3, other_total=1)
    write_values(tmp_path / f"counter_{os.getpid()}.db", jobs_total=2)
    write_values(tmp_path / f"gauge_max_{exited.pid}.db", biggest=9)
    write_values(tmp_path / f"gauge_livesum_{exited.pid}.db", running=4)
    before = totals(tmp_path)

    folded = multiproc.fold_dead_process_files(tmp_path)

    assert {path.name for path in folded} == {
        f"counter_{exited.pid}.db",
        f"gauge_max_{exited.pid}.db",
        f"gauge_livesum_{exited.pid}.db",
    }
    assert {path.name for path in tmp_path.glob("*.db")} == {
        "counter_archive.db",
        f"counter_{os.getpid()}.db",
        "gauge_max_archive.db",
    }
    # A dead process's live gauge goes; every counter keeps its sum.
    assert totals(tmp_path) == {k: v for k, v in before.items() if k != "running"}
    assert totals(tmp_path)["jobs_total"] == 10
    assert multiproc.fold_dead_process_files(tmp_path) == []


def test_an_empty_directory_setting_turns_multiprocess_mode_off(monkeypatch, tmp_path):
    monkeypatch.setenv(multiproc.ENV, "")
    assert multiproc.use_multiproc_dir(tmp_path / "metrics") is None
    assert not (tmp_path / "metrics").exists()
    # Gone from the environment: prometheus_client takes a present, empty one as the cwd.
    assert multiproc.ENV not in os.environ
    assert multiproc.use_multiproc_dir(tmp_path / "metrics") == tmp_path / "metrics"
    assert (tmp_path / "metrics").is_dir()
