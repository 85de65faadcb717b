"""The per-key rate limit: exact under concurrency, with a Retry-After that tells the truth."""

from __future__ import annotations

import http.client
import math
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

import pytest

from analysis.api.authentication import ApiKeyRateThrottle
from analysis.api_keys import issue_key
from tests.conftest import assert_envelope
from tests.support.live_server import start_gunicorn, stop

LIST = "/api/v1/analysis"


@pytest.fixture
def clock(monkeypatch):
    """The throttle's clock, set by the test."""
    now = {"t": 1_800_000_000.0}  # a whole minute: 30,000,000 minutes since the epoch
    monkeypatch.setattr(ApiKeyRateThrottle, "timer", lambda self: now["t"])
    return now


@pytest.mark.django_db
def test_a_window_lets_the_rate_through_and_the_next_window_starts_afresh(
    api, rate, clock, clean_cache
):
    rate("3/minute")
    clock["t"] += 10
    assert [api.get(LIST).status_code for _ in range(3)] == [200, 200, 200]

    clock["t"] += 12.4
    refused = api.get(LIST)

    body = assert_envelope(refused, 429, "RATE_LIMITED")
    # 22.4 s into the minute: 37.6 s left, rounded up so that a client waiting that long is let in.
    assert body["details"] == {"wait_seconds": 38}
    assert refused["Retry-After"] == "38"
    clock["t"] += 37.6
    assert api.get(LIST).status_code == 200


@pytest.mark.django_db
def test_each_key_has_its_own_budget(api, other_api, rate, clock, clean_cache):
    rate("1/minute")
    assert api.get(LIST).status_code == 200
    assert api.get(LIST).status_code == 429
    assert other_api.get(LIST).status_code == 200


RATE = 600
CLIENTS = 8


def _burst(base_url: str, key: str) -> tuple[Counter, list[int], float, float]:
    """CLIENTS keep-alive connections request until each is refused; statuses and Retry-Afters."""
    statuses: Counter = Counter()
    retry_afters: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)
    host = urlsplit(base_url)

    def client() -> None:
        connection = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
        start.wait()
        while True:
            connection.request("GET", LIST, headers={"Authorization": f"Api-Key {key}"})
            response = connection.getresponse()
            response.read()
            with lock:
                statuses[response.status] += 1
                if response.status == 429:
                    retry_afters.append(int(response.headers["Retry-After"]))
            if response.status != 200:
                break
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    began = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return statuses, retry_afters, began, time.time()


@pytest.mark.slow
def test_concurrent_clients_get_exactly_the_rate_through(child_env, organization):
    """Two gunicorn processes, eight clients of one key: the limit holds to the request."""
    server = start_gunicorn(
        child_env,
        "--workers",
        "2",
        "--threads",
        "4",
        overrides={"API_RATE_LIMIT": f"{RATE}/minute"},
    )
    try:
        for attempt in range(2):
            key = issue_key(organization, f"burst-{attempt}").plaintext
            statuses, retry_afters, began, ended = _burst(server.base_url, key)
            if math.floor(began / 60) == math.floor(ended / 60):
                break  # the burst fell inside one window; otherwise try again in the new one
    finally:
        stop(server)

    print(f"\nrate limit {RATE}/minute, {CLIENTS} concurrent clients: {dict(statuses)}")
    assert statuses == Counter({200: RATE, 429: CLIENTS})
    window_left = 60 - ended % 60
    assert all(1 <= wait <= 60 for wait in retry_afters)
    assert max(retry_afters) <= math.ceil(window_left) + math.ceil(ended - began) + 1
