"""The README's shell examples, run as a reader runs them, so that they stay true.

Every ```sh block of README.md is run by bash (``set -euo pipefail``), in order, in a folder
that links to the repository's files, unless a marker right above it says why it cannot be
(``<!-- example: not run — reason -->``); the blocks so marked are exactly ``NOT_RUN``. The API
examples run against a real gunicorn and a real Celery worker on a fresh database, as after
``make run`` (only the port differs): ``KEY``, ``JOB`` and ``VEX`` come from the README's own
blocks. Each request's status must be the one the README documents — a table's success status,
or the status and error code the block itself states — and the downloads must be the files
named. The benchmarks' quick runs are run on their own, with no backend given, as a reader would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from tempfile import mkdtemp

import pytest

from tests.support.live_server import start_gunicorn, stop
from tests.support.processes import WORKER_ENV, start_celery_worker
from tests.support.readme import (
    README,
    README_PORT,
    REPO,
    Block,
    documented_statuses,
    mirror_of_repo,
    run_blocks,
    shell_blocks,
    template_of,
)
from tests.support.tools import unavailable

TEXT = README.read_text()
MARKDOWN = shell_blocks(TEXT)
BENCHMARKS = "Benchmarks"
# Run on the log the API examples leave behind, once they have run.
LOG_QUERIES = "Log queries"

# The blocks that are not run (by their first line), and the word each reason must give.
NOT_RUN = {
    "make run": "make test",
    "export DATABASE_URL=postgres://": "PostgreSQL",
    "docker build -t vexxy .": "Docker",
    "docker run --rm -p 16686:16686": "Docker",
    "# Trivy": "Trivy",
    ".venv/bin/python bench/api_load.py --peer": "minutes",
    "# once: the namespace, and the Secret in it": "Kubernetes cluster",
    "deploy/kind/quickstart.sh": "Docker",
}


def blocks(*, run: bool, section: str | None = None, not_section: str | None = None) -> list[Block]:
    return [
        block
        for block in MARKDOWN.blocks
        if (block.not_run is None) == run
        and (section is None or block.section == section)
        and (not_section is None or block.section != not_section)
    ]


def api_examples() -> list[Block]:
    return [b for b in blocks(run=True) if b.section not in (BENCHMARKS, LOG_QUERIES)]


def test_every_sh_block_is_run_or_says_why_not():
    assert MARKDOWN.blocks, "no ```sh block found in README.md"
    assert MARKDOWN.stray_markers == [], "example markers not right above an sh block"
    not_run = {
        prefix: block
        for block in blocks(run=False)
        for prefix in NOT_RUN
        if block.first_line.startswith(prefix)
    }
    described = [f"line {b.line}: {b.first_line}" for b in blocks(run=False)]
    assert len(not_run) == len(blocks(run=False)) == len(NOT_RUN), described
    for prefix, word in NOT_RUN.items():
        assert word in not_run[prefix].not_run, (prefix, not_run[prefix].not_run)
    # What runs speaks to the address `make run` serves, which the test replaces by its own.
    for block in blocks(run=True):
        for address in re.findall(r"https?://[^/\s\"']+", block.text):
            assert address == f"http://127.0.0.1:{README_PORT}", (block.line, address)
    # Every block that runs is run by one of the two tests below.
    assert blocks(run=True, section=BENCHMARKS), "the quick benchmarks are no longer run"
    assert api_examples()
    assert blocks(run=True, section=LOG_QUERIES), "the log queries are no longer run"


@dataclass(frozen=True)
class Expected:
    method: str
    path: str  # a template of a README table (under /api/v1 for the API's), or the path itself
    status: int
    error: str | None = None  # for a status the block states, as "<status> <error>"


# Every request of the API examples, in README order.
EXPECTED = [
    Expected("GET", "/health", 200),
    Expected("GET", "/api/v1/does-not-exist", 404, "RESOURCE_NOT_FOUND"),
    # On the embedded default, with no cluster, a submission is refused.
    Expected("POST", "/analysis/submit", 503, "SERVICE_UNAVAILABLE"),
    Expected("GET", "/analysis", 200),
    Expected("POST", "/analysis/import", 201),
    Expected("GET", "/analysis/{id}", 200),
    Expected("GET", "/analysis/{id}/status", 200),
    Expected("GET", "/analysis/{id}/results", 200),
    Expected("GET", "/analysis/{id}/results", 200),
    # The imported job is complete: neither cancelled nor retried.
    Expected("DELETE", "/analysis/{id}", 409, "INVALID_JOB_STATE"),
    Expected("POST", "/analysis/{id}/retry", 409, "INVALID_JOB_STATE"),
    Expected("GET", "/analysis/{id}/evidence", 200),
    Expected("GET", "/analysis/{id}/report", 200),
    Expected("GET", "/vex/{vex_id}", 200),
    Expected("GET", "/vex/{vex_id}", 200),
    Expected("GET", "/vex/{vex_id}", 200),
    Expected("GET", "/vex/{vex_id}", 200),
]


def wait_until_healthy(base_url: str, timeout: float = 90) -> None:
    """/health answers 200 once the worker's heartbeat is in the shared cache."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(base_url + "/health", timeout=30) as response:  # noqa: S310
                if response.status == 200:
                    return
        except urllib.error.HTTPError as error:
            body = error.read().decode(errors="replace")
            if time.monotonic() > deadline:
                raise AssertionError(f"/health never became healthy: {body}") from error
        time.sleep(0.5)


def assert_openvex(path: Path, vex_id: str) -> None:
    document = json.loads(path.read_text())
    assert document["@context"].startswith("https://openvex.dev/ns"), path
    assert document["@id"].endswith(vex_id), (path, document["@id"])
    assert document["statements"], path


def assert_cyclonedx(path: Path) -> None:
    document = json.loads(path.read_text())
    assert document["bomFormat"] == "CycloneDX", path
    assert document["specVersion"] == "1.6", path
    assert document["vulnerabilities"], path


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_api_examples_do_what_the_readme_says(child_env, tmp_path):
    examples = api_examples()
    # JSON lines at INFO, as in production, for the log queries to read afterwards.
    server = start_gunicorn(child_env, overrides={"LOG_LEVEL": "INFO", "LOG_FORMAT": "json"})
    worker = None
    try:
        worker, _ = start_celery_worker(
            f"readme-{tmp_path.name}", "readme", {**child_env, **WORKER_ENV}, REPO
        )
        wait_until_healthy(server.base_url)
        here = mirror_of_repo(tmp_path / "repo")
        run = run_blocks(
            examples,
            env={**child_env, "SANDBOX_ENABLED": "false"},
            cwd=here,
            work=tmp_path,
            port=int(server.base_url.rsplit(":", 1)[1]),
            timeout=300,
        )
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=60)
        stop(server)

    assert run.completed.returncode == 0, run.explain()
    assert run.finished == [block.number for block in examples], run.explain()

    # Each request, with the status the README documents for it.
    documented = documented_statuses(TEXT)
    calls = run.calls
    assert [
        (call.method, template_of(call.method, call.path, documented) or call.path, call.status)
        for call in calls
    ] == [(e.method, e.path, e.status) for e in EXPECTED], run.explain()
    block_text = {block.number: block.text for block in examples}
    for call, expected in zip(calls, EXPECTED, strict=True):
        assert call.exit == 0, (str(call), call.exit)
        if expected.error is None:
            assert documented[expected.method, expected.path] == expected.status, str(call)
        else:
            assert f"{expected.status} {expected.error}" in block_text[call.block], str(call)
            assert call.json()["error"] == expected.error, (str(call), call.stdout)

    health, not_found, submit, _, imported, *on_job = calls
    assert health.json()["status"] == "healthy"
    assert not_found.header("X-Request-ID") == "my-trace-1"
    assert not_found.json()["request_id"] == "my-trace-1"
    assert submit.json()["details"]["service"] == "sandbox"
    # KEY came from create_api_key's block (the calls were let in), JOB and VEX from the import's.
    job = imported.json()
    assert job["status"] == "complete"
    vex_id = job["generated_vex_id"]
    for call in on_job:
        assert job["job_id"] in call.url or vex_id in call.url, str(call)

    # The downloads are the files the README names, holding what it says they hold.
    downloads = {call.saved_as: call for call in on_job if call.saved_as}
    assert set(downloads) == {
        f"vex-{vex_id}.json",
        f"vex-{vex_id}.cdx.json",
        "vex.json",
        "vex.cdx.json",
        f"report-{job['job_id']}.html",
    }
    assert_openvex(here / f"vex-{vex_id}.json", vex_id)
    assert_openvex(here / "vex.json", vex_id)
    assert_cyclonedx(here / f"vex-{vex_id}.cdx.json")
    assert_cyclonedx(here / "vex.cdx.json")

    # The log queries, on the web process's own JSON lines of the calls above.
    (here / "vexxy.log").write_text(
        "".join(line + "\n" for line in server.output.lines if line.startswith("{"))
    )
    queries = run_blocks(
        blocks(run=True, section=LOG_QUERIES),
        env=child_env,
        cwd=here,
        work=Path(mkdtemp(dir=tmp_path)),
        port=None,
        timeout=60,
    )
    assert queries.completed.returncode == 0, queries.explain()
    printed = queries.completed.stdout
    for status_and_code in ("404 RESOURCE_NOT_FOUND", "503 SERVICE_UNAVAILABLE"):
        assert re.search(rf"^\s*1 {status_and_code}$", printed, re.MULTILINE), printed
    assert re.search(r"^\s*2 409 INVALID_JOB_STATE$", printed, re.MULTILINE), printed
    # The story of my-trace-1: its 404 logged as an error, then the request's own line.
    story = [json.loads(line) for line in printed.splitlines() if line.startswith("{")]
    assert [(entry["logger"], entry["level"]) for entry in story] == [
        ("reliability.errors", "WARNING"),
        ("reliability.requests", "INFO"),
    ], printed
    assert story[1]["message"] == "request_finished"


# What each quick benchmark prints at its end, once it has measured.
BENCHMARK_REPORTS = {
    "bench/api_load.py --quick": "Targets (issue 12):",
    "bench/import_scale.py --quick": "target(s) missed",
    "bench/vex_build.py --quick": "observed: build/parse",
    "bench/vex_cyclonedx.py": "ms/stmt",
}
BACKEND_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CACHE_URL", "CELERY_BROKER_URL")


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_quick_benchmarks_run(tmp_path):
    """Run as a reader runs them: from a shell with no backend set (each starts its own)."""
    quick = blocks(run=True, section=BENCHMARKS)
    commands = "\n".join(block.text for block in quick)
    assert [script for script in BENCHMARK_REPORTS if script in commands] == list(BENCHMARK_REPORTS)
    assert len(re.findall(r"^\.venv/bin/python ", commands, re.MULTILINE)) == len(BENCHMARK_REPORTS)
    missing = [tool for tool in ("wrk", "redis-server") if shutil.which(tool) is None]
    if missing:
        unavailable(f"bench/api_load.py needs {', '.join(missing)} (see README: Benchmarks)")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "DJANGO_")) and key not in BACKEND_VARIABLES
    }
    env["VEXXY_DATA_DIR"] = str(tmp_path / "var")
    run = run_blocks(
        quick,
        env=env,
        cwd=mirror_of_repo(tmp_path / "repo"),
        work=tmp_path,
        port=None,
        timeout=1400,
    )
    assert run.completed.returncode == 0, run.explain()
    assert run.finished == [block.number for block in quick], run.explain()
    for script, report in BENCHMARK_REPORTS.items():
        assert report in run.completed.stdout, (script, run.explain())
