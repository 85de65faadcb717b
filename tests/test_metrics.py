"""/metrics of the whole service: two real gunicorn workers summed; a worker host's own port."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from reliability.metrics.multiproc import pid_of
from tests.conftest import free_port
from tests.support.live_server import REPO, LiveServer, start_gunicorn, stop
from tests.support.processes import WORKER_ENV, start_celery_worker

LIVEZ = {"route": "livez", "method": "GET", "status_class": "2xx"}
BATCH, MOST_BATCHES = 16, 25


def get(url: str) -> bytes:
    # urllib sends "Connection: close": each request is a new connection, any worker's.
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310
        return response.read()


def livez_by_pid(directory: Path) -> dict[int, float]:
    """Each process's own count of GET /livez 2xx, read from its file."""
    counts: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, labels, _ = json.loads(key)
            if name == "vexxy_http_requests_total" and labels == LIVEZ:
                counts[pid_of(path)] = counts.get(pid_of(path), 0.0) + value
    return counts


@pytest.fixture
def two_workers(child_env, tmp_path) -> Iterator[tuple[LiveServer, Path]]:
    directory = tmp_path / "metrics"
    server = start_gunicorn(
        child_env, "--workers", "2", overrides={"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    )
    try:
        yield server, directory
    finally:
        stop(server)


def test_one_scrape_sums_both_workers(two_workers):
    server, directory = two_workers
    workers = server.worker_pids()
    assert len(workers) == 2
    sent = 1  # start_gunicorn's own /livez
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(MOST_BATCHES):
            list(pool.map(get, [server.base_url + "/livez"] * BATCH))
            sent += BATCH
            if set(livez_by_pid(directory)) == set(workers):
                break
    per_worker = livez_by_pid(directory)
    assert set(per_worker) == set(workers), "one worker served every request"
    assert all(count < sent for count in per_worker.values())

    scraped = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(get(server.base_url + "/metrics").decode())
        for s in family.samples
    }
    assert scraped[("vexxy_http_requests_total", tuple(sorted(LIVEZ.items())))] == sent
    assert sum(per_worker.values()) == sent
    duration = (
        "vexxy_http_request_duration_seconds_count",
        (("method", "GET"), ("route", "livez")),
    )
    assert scraped[duration] == sent


def test_a_worker_host_serves_its_metrics_on_a_port(child_env, tmp_path):
    directory, port = tmp_path / "metrics", free_port()
    env = {
        **child_env,
        **WORKER_ENV,
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "METRICS_WORKER_PORT": str(port),
        "METRICS_WORKER_HOST": "127.0.0.1",
    }
    process, output = start_celery_worker(f"metrics-{tmp_path.name}", "metrics", env, REPO)
    try:
        output.wait_for(lambda line: f"Serving /metrics on port {port}" in line)
        text = get(f"http://127.0.0.1:{port}/metrics").decode()
        samples = {
            s.name: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        # Written by the worker into the directory the port serves, and read from the cache.
        assert {pid_of(path) for path in directory.glob("*.db")} == {process.pid}
        assert 0 <= samples["vexxy_celery_heartbeat_age_seconds"] < 60  # its ready beat
        with pytest.raises(urllib.error.HTTPError) as refused:
            get(f"http://127.0.0.1:{port}/health")
        assert refused.value.code == 404
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_counts_survive_a_restart_folded_into_the_archive(child_env, tmp_path):
    directory = tmp_path / "metrics"
    overrides = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    first = start_gunicorn(child_env, "--workers", "2", overrides=overrides)
    try:
        for _ in range(5):
            get(first.base_url + "/livez")
    finally:
        stop(first)
    second = start_gunicorn(child_env, "--workers", "2", overrides=overrides)
    try:
        text = get(second.base_url + "/metrics").decode()
        live = set(second.worker_pids())
    finally:
        stop(second)
    scraped = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    # 1 + 5 before the restart, 1 after: none lost, none counted twice.
    assert scraped[("vexxy_http_requests_total", tuple(sorted(LIVEZ.items())))] == 7
    assert (directory / "counter_archive.db").is_file()
    assert {pid_of(path) for path in directory.glob("counter_*.db")} <= live | {None}


@pytest.mark.slow
def test_an_empty_directory_setting_keeps_metrics_in_memory(child_env, tmp_path):
    """prometheus_client counts an empty PROMETHEUS_MULTIPROC_DIR as set: files in the cwd."""
    done = subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "check_health", "--json"],
        cwd=tmp_path,
        env={**child_env, "PROMETHEUS_MULTIPROC_DIR": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert json.loads(done.stdout)["checks"]["database"]["status"] == "healthy", done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == []
