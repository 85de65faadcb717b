"""The correlation ID travels from the publisher into the task, eager and through a real worker."""

from __future__ import annotations

import json

import pytest

from reliability.correlation import correlation_scope, get_request_id
from reliability.tasks import echo_request_id


def test_eager_task_runs_under_the_callers_request_id(caplog):
    with correlation_scope("eager-req-1"):
        result = echo_request_id.delay()
    assert result.get() == "eager-req-1"
    records = [r for r in caplog.records if r.name == "reliability.tasks"]
    assert [r.echoed_request_id for r in records] == ["eager-req-1"]
    assert get_request_id() is None


def test_eager_task_without_a_request_id_gets_a_fresh_one_and_clears_it():
    result = echo_request_id.delay()
    assert result.get()
    assert result.get() != "-"
    assert get_request_id() is None


@pytest.mark.timeout(180)
def test_real_worker_logs_the_publishers_request_id(celery_worker_process):
    queue, output = celery_worker_process
    with correlation_scope("worker-req-42"):
        echo_request_id.apply_async(queue=queue)
    line = output.wait_for(lambda text: "echo_request_id ran" in text, timeout=60)
    record = json.loads(line)
    assert record["request_id"] == "worker-req-42"
    assert record["echoed_request_id"] == "worker-req-42"
    assert record["level"] == "INFO"
    assert record["logger"] == "reliability.tasks"


def test_an_explicit_header_outranks_the_publishers_id():
    """A job republished by beat still runs under its submission's request ID."""
    with correlation_scope("beat-run-7"):
        result = echo_request_id.apply_async(headers={"request_id": "submission-3"})
    assert result.get() == "submission-3"
