"""The memory attacks against a real gunicorn worker: refused cheaply, its memory stays flat.

Measured from /proc: the worker's resident set (VmRSS) and the CPU time it spent,
compared with an honest small import, or with parsing the body, in the same run: ratios,
not wall-clock limits.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from analysis.api_keys import issue_key
from analysis.models import AnalysisJob, Organization
from tests.support.live_server import LiveServer
from tests.test_api_import import DIGEST, SMALL_FULL, SMALL_RELEVANT
from tests.test_hostile_input import BILLION_LAUGHS

pytestmark = pytest.mark.timeout(180)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FEW_MB = 8 * 1024 * 1024


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    (line,) = [line for line in status.splitlines() if line.startswith("VmRSS:")]
    return int(line.split()[1]) * 1024


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def multipart(fields: dict[str, bytes | str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        filename = f'; filename="{name}.yaml"' if isinstance(value, bytes) else ""
        data = value if isinstance(value, bytes) else value.encode()
        disposition = f'Content-Disposition: form-data; name="{name}"{filename}'
        parts.append(f"--{boundary}\r\n{disposition}\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post(server: LiveServer, path: str, key: str, body: bytes, content_type: str):
    request = urllib.request.Request(  # noqa: S310 - a local test server
        server.base_url + path,
        data=body,
        method="POST",
        headers={"Authorization": f"Api-Key {key}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def upload(full_manifest: bytes) -> tuple[bytes, str]:
    return multipart(
        {
            "image_ref": "nginx:1.13",
            "image_digest": DIGEST,
            "full_manifest": full_manifest,
            "relevant_manifest": json.dumps(SMALL_RELEVANT).encode(),
        }
    )


ATTACKS = {
    "billion laughs": ("/api/v1/analysis/import", *upload(BILLION_LAUGHS)),
    "JSON 5000 deep": (
        "/api/v1/analysis/import",
        b'{"full_manifest": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "application/json",
    ),
    "4 MB of empty arrays": (
        "/api/v1/analysis/submit",
        b'{"image_ref": [' + b"[]," * 1_400_000 + b"[]]}",
        "application/json",
    ),
}


def parse_cpu(body: bytes) -> float:
    """CPU seconds ``json.loads`` takes over ``body`` here: what accepting it would start with."""
    started = time.process_time()
    with contextlib.suppress(ValueError, RecursionError):
        json.loads(body)
    return time.process_time() - started


def test_memory_attacks_leave_a_real_worker_flat_and_are_refused_cheaply(
    live_gunicorn: LiveServer, capsys: pytest.CaptureFixture[str]
):
    organization = Organization.objects.create(
        name="Acme", slug="acme", monthly_analysis_quota=1000
    )
    key = issue_key(organization, "attacks").plaintext
    (worker,) = live_gunicorn.worker_pids()
    honest = upload(json.dumps(SMALL_FULL).encode())

    cpu_before = cpu_seconds(worker)
    status, _ = post(live_gunicorn, "/api/v1/analysis/import", key, *honest)
    assert status == 201
    honest_cpu = cpu_seconds(worker) - cpu_before
    for path, body, content_type in ATTACKS.values():  # warm every code path once
        post(live_gunicorn, path, key, body, content_type)
    baseline = rss_bytes(worker)

    for name, (path, body, content_type) in ATTACKS.items():
        for _ in range(3):
            cpu_before = cpu_seconds(worker)
            status, envelope = post(live_gunicorn, path, key, body, content_type)
            spent = cpu_seconds(worker) - cpu_before
            assert status == 400, (name, envelope)
            assert envelope["error"] == "VALIDATION_ERROR", (name, envelope)
            allowed = max(honest_cpu, 3 * parse_cpu(body), 5 / CLOCK_TICKS)
            assert spent <= allowed, (name, spent, allowed)

    grown = rss_bytes(worker) - baseline
    with capsys.disabled():
        print(
            f"\nworker RSS {baseline / 2**20:.1f} MB, grown {grown / 2**20:.2f} MB after 9 attacks"
        )
    assert grown < FEW_MB
    assert AnalysisJob.objects.count() == 1  # the honest import only
