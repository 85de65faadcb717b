"""Schema fuzzing: schemathesis with all checks against a live gunicorn, as two organizations.

Two runs share the server, at the same time. The owner (acme) fuzzes every operation through
every phase; its object-level authorization check replays its reads as the stranger (globex).
The stranger fuzzes every operation with the owner's job and VEX IDs in half of the paths:
none of its requests may succeed on, or answer with, an object of the owner's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from analysis.api_keys import issue_key
from analysis.imports import import_results
from analysis.models import AnalysisJob, Organization
from analysis.results import Evidence
from tests.conftest import make_job
from tests.support.live_server import LiveServer, live_gunicorn  # noqa: F401
from tests.test_api_import import small_import

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SEED = 20261130
FUZZ_TIMEOUT = 240

# What a schema-valid request may get, beyond 2xx, by operation (5xx is not_a_server_error's).
READS_BY_ID = ("analysis_retrieve", "analysis_status", "analysis_evidence", "vex_retrieve")
STATEFUL_BY_ID = ("analysis_cancel", "analysis_results", "analysis_retry")
JOB_READS = ("analysis_retrieve", "analysis_status", "analysis_evidence", "analysis_results")

CONFIG = """\
seed = {seed}
workers = 1
request-timeout = 30
continue-on-failure = true
parameters = {{ "path.job_id" = {{ dictionary = "owner_jobs", probability = 0.5 }}, \
"path.vex_id" = {{ dictionary = "owner_vex", probability = 0.5 }} }}

[cache]
enabled = false

[dictionaries.owner_jobs]
values = {job_ids}

[dictionaries.owner_vex]
values = {vex_ids}

[generation]
mode = "all"
max-examples = 100
database = "none"
with-security-parameters = {fuzz_credentials}

[phases.coverage]
enabled = {coverage}

[phases.stateful]
enabled = true

[checks]
enabled = true
positive_data_acceptance.expected-statuses = ["2xx", "5xx"]

[[operations]]
include-operation-id = "analysis_submit"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]

[[operations]]
include-operation-id = {reads_by_id}
checks.positive_data_acceptance.expected-statuses = ["2xx", "404", "5xx"]

[[operations]]
include-operation-id = {stateful_by_id}
checks.positive_data_acceptance.expected-statuses = ["2xx", "404", "409", "5xx"]

# DELETE cancels a job and keeps it readable (README: `200`, `cancelled`): not a use after free.
[[operations]]
include-operation-id = {job_reads}
checks.use_after_free.enabled = false

{auth}
"""

OWNER_AUTH = """\
[auth.wfc]
path = "{path}"
user = "acme"
peers = ["acme", "globex"]
"""

# The stranger's requests all carry its key: malformed credentials are the owner run's to fuzz.
STRANGER_AUTH = """\
[auth.openapi.ApiKey]
api_key = "Api-Key {key}"
"""


@dataclass
class Fuzzer:
    name: str
    process: subprocess.Popen
    workdir: Path
    started: float

    def finish(self) -> tuple[int, str, dict, float]:
        """Exit code, report and JSON summary of the run, and how long it took."""
        code = self.process.wait(timeout=FUZZ_TIMEOUT)
        elapsed = time.monotonic() - self.started
        report = (self.workdir / f"{self.name}.log").read_text()
        summary = self.workdir / f"{self.name}.json"
        assert summary.exists(), f"{self.name}: schemathesis wrote no summary\n{report}"
        return code, report, json.loads(summary.read_text()), elapsed


def seed_jobs(organization: Organization) -> list[AnalysisJob]:
    """A complete job with results, evidence and VEX, and one job in every other state."""
    data = small_import()
    imported = import_results(
        organization,
        data["image_ref"],
        data["image_digest"],
        Evidence(data["full_manifest"], data["relevant_manifest"]),
        completion="complete",
        submitted_by="seed",
    )
    states = ("queued", "running", "analyzing", "failed", "cancelled")
    return [imported, *(make_job(organization, status=state) for state in states)]


def start_fuzzer(
    server: LiveServer,
    name: str,
    auth: str,
    owner: list[AnalysisJob],
    workdir: Path,
    *,
    stranger: bool,
) -> Fuzzer:
    """schemathesis in the background, as ``auth``, with ``owner``'s IDs for the paths.

    The stranger skips the coverage phase: its cases are the owner's, never with the owner's IDs.
    """
    config = workdir / f"{name}.toml"
    config.write_text(
        CONFIG.format(
            seed=SEED,
            job_ids=json.dumps([str(job.pk) for job in owner]),
            vex_ids=json.dumps(
                [str(job.generated_vex_id) for job in owner if job.generated_vex_id]
            ),
            fuzz_credentials=json.dumps(not stranger),
            coverage=json.dumps(not stranger),
            reads_by_id=json.dumps(READS_BY_ID),
            stateful_by_id=json.dumps(STATEFUL_BY_ID),
            job_reads=json.dumps(JOB_READS),
            auth=auth,
        )
    )
    argv = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{server.base_url}/api/schema/?format=json",
        "--url",
        server.base_url,
        "--no-color",
        "--report",
        "json,har",
        "--report-json-path",
        str(workdir / f"{name}.json"),
        "--report-har-path",
        str(workdir / f"{name}.har"),
    ]
    with (workdir / f"{name}.log").open("w") as log:
        process = subprocess.Popen(argv, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    return Fuzzer(name, process, workdir, time.monotonic())


def successes_naming(har: Path, ids: set[str]) -> list[str]:
    """Requests that got a 2xx while their path or response body names one of ``ids``."""
    found = []
    for entry in json.loads(har.read_text())["log"]["entries"]:
        request, response = entry["request"], entry["response"]
        seen = urlsplit(request["url"]).path + (response["content"].get("text") or "")
        if 200 <= response["status"] < 300 and any(value in seen for value in ids):
            found.append(f"{request['method']} {request['url']} -> {response['status']}")
    return found


def test_the_api_survives_schema_fuzzing_as_two_organizations(live_gunicorn, tmp_path):  # noqa: F811
    keys, jobs = {}, {}
    for slug in ("acme", "globex"):
        organization = Organization.objects.create(
            name=slug.title(), slug=slug, monthly_analysis_quota=100_000
        )
        jobs[slug] = seed_jobs(organization)
        keys[slug] = issue_key(organization, "fuzz").plaintext
    wfc = tmp_path / "auth.json"
    wfc.write_text(
        json.dumps(
            {
                "auth": [
                    {
                        "name": slug,
                        "fixedHeaders": [{"name": "Authorization", "value": f"Api-Key {key}"}],
                    }
                    for slug, key in keys.items()
                ]
            }
        )
    )
    owner_ids = {str(job.pk) for job in jobs["acme"]} | {
        str(job.generated_vex_id) for job in jobs["acme"] if job.generated_vex_id
    }

    owner_auth, stranger_auth = (
        OWNER_AUTH.format(path=wfc),
        STRANGER_AUTH.format(key=keys["globex"]),
    )
    fuzzers = [
        start_fuzzer(live_gunicorn, "acme", owner_auth, jobs["acme"], tmp_path, stranger=False),
        start_fuzzer(live_gunicorn, "globex", stranger_auth, jobs["acme"], tmp_path, stranger=True),
    ]
    problems = []
    try:
        for fuzzer in fuzzers:
            code, report, summary, elapsed = fuzzer.finish()
            cases = summary["test_cases"]
            numbers = (
                f"{fuzzer.name}: {summary['operations']['tested']} operations,"
                f" {cases['generated']} cases, {cases['unique_failures']} unique failures"
                f" in {cases['with_failures']} cases, {elapsed:.0f}s"
            )
            print(numbers, report, sep="\n")
            if code != 0:
                problems.append(f"{numbers}\n{report}")
    finally:
        for fuzzer in fuzzers:
            if fuzzer.process.poll() is None:
                fuzzer.process.kill()
                fuzzer.process.wait()
    leaks = successes_naming(tmp_path / "globex.har", owner_ids)
    print(f"globex: {len(leaks)} successful requests naming acme's objects")
    problems += [f"globex reached acme's object: {leak}" for leak in leaks]
    assert not problems, "\n\n".join(problems)
