"""The reliability app alone, in a project that has nothing else and sets none of its settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ENVELOPE = {"error", "message", "details", "timestamp", "request_id"}


@pytest.fixture(scope="module")
def run() -> tuple[dict, list[dict]]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.support.bare_project.settings"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.bare_project.drive"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # stdout holds the result alone; the log goes to stderr, one JSON object per line
    return json.loads(done.stdout), [json.loads(line) for line in done.stderr.splitlines()]


def test_analysis_is_not_even_imported(run):
    result, _ = run
    assert result["analysis_loaded"] is False


def test_health_and_liveness_are_served(run):
    responses = run[0]["responses"]
    assert responses["health"]["status"] == 200
    assert set(responses["health"]["body"]["checks"]) == {"database", "circuit_breakers"}
    assert responses["health"]["body"]["service"] == "service"  # the default name
    assert responses["livez"]["body"]["status"] == "alive"


def test_every_error_is_the_envelope_with_the_request_id(run):
    responses = run[0]["responses"]
    for name, code, status in [
        ("invalid", "VALIDATION_ERROR", 400),
        ("broken", "INTERNAL_ERROR", 500),
        ("missing", "RESOURCE_NOT_FOUND", 404),
    ]:
        answer = responses[name]
        assert (answer["status"], answer["body"]["error"]) == (status, code), name
        assert set(answer["body"]) == ENVELOPE
        assert answer["body"]["request_id"] == answer["request_id"]
    assert responses["invalid"]["body"]["details"]["errors"][0]["field"] == "quantity"
    assert responses["broken"]["request_id"] == "bare-req-1"
    assert "secret" not in json.dumps(responses["broken"]["body"])


def test_logs_are_json_lines_carrying_the_request_id(run):
    _, logs = run
    [failure] = [
        line
        for line in logs
        if line.get("request_id") == "bare-req-1" and line.get("level") == "ERROR"
    ]
    assert failure["error_code"] == "INTERNAL_ERROR"
    assert "RuntimeError: secret internals" in failure["exc_info"]
