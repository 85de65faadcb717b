"""Schema fuzzing: schemathesis with all checks against a live gunicorn, as two organizations.

Two runs share the server, at the same time. The owner (acme) fuzzes every operation through
every phase; its object-level authorization check replays its reads as the stranger (globex).
The stranger sends valid requests to every operation but submit and import, with its own and
the owner's job and VEX IDs in half of the paths: none of its requests may succeed on, or
answer with, an object of the owner's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from analysis.api_keys import issue_key
from analysis.imports import import_results
from analysis.models import Organization
from analysis.results import Evidence
from tests.conftest import make_job
from tests.support.live_server import LiveServer
from tests.test_api_import import small_import

pytestmark = pytest.mark.timeout(300)

SEED = 20261130
REPO = Path(__file__).resolve().parent.parent
HOOKS = "tests.support.fuzz_hooks"
FUZZ_TIMEOUT = 240

# Beyond 2xx, what a schema-valid request may get (its 5xx are not_a_server_error's to report):
# 404 for an unknown ID or another organization's, 409 when the job's state forbids the action,
# and 400 where OpenAPI cannot state the rule: a forged cursor, contradicting filters
# (status and status_filter, created_before < created_after), a file that is no Kubescape object.
VALID_ALSO_GETS = {
    "analysis_list": ["400"],
    "analysis_retrieve": ["404"],
    "analysis_status": ["404"],
    "analysis_evidence": ["404"],
    "analysis_results": ["400", "404", "409"],
    "analysis_report": ["400", "404", "409"],
    "analysis_cancel": ["404", "409"],
    "analysis_retry": ["404", "409"],
    "vex_retrieve": ["404"],
    "analysis_import": ["400"],
}
JOB_READS = [
    "analysis_retrieve",
    "analysis_status",
    "analysis_evidence",
    "analysis_results",
    "analysis_report",
]

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
mode = "{mode}"
max-examples = 100
database = "none"
with-security-parameters = {fuzz_credentials}

[phases.coverage]
enabled = true

[phases.fuzzing]
enabled = {fuzzing}

[phases.stateful]
enabled = true

[checks]
enabled = true
max_response_time = 10
positive_data_acceptance.expected-statuses = ["2xx", "5xx"]

# Without a cluster a valid submission or retry is refused with 503 SERVICE_UNAVAILABLE
# (README, and the operations' descriptions).
[[operations]]
include-operation-id = ["analysis_submit", "analysis_retry"]
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]

# DELETE cancels a job and keeps it readable (README: `200`, `cancelled`): not a use after free.
[[operations]]
include-operation-id = {job_reads}
checks.use_after_free.enabled = false
{valid_also_gets}
{identity}
"""

VALID_ALSO_GETS_BLOCK = """
[[operations]]
include-operation-id = "{operation}"
checks.positive_data_acceptance.expected-statuses = {statuses}
"""

OWNER = """\
[auth.wfc]
path = "{path}"
user = "acme"
peers = ["acme", "globex"]
"""

# Every request of the stranger's carries its key (malformed credentials are the owner run's to
# fuzz), and it skips the operations that take no ID: they cannot name the owner's objects.
STRANGER = """\
[auth.openapi.ApiKey]
api_key = "Api-Key {key}"

[[operations]]
include-operation-id = ["analysis_submit", "analysis_import"]
enabled = false
"""


@dataclass
class Fuzzer:
    name: str
    process: subprocess.Popen
    workdir: Path

    def finish(self) -> tuple[int, str, dict]:
        """Exit code, report and JSON summary of the run."""
        code = self.process.wait(timeout=FUZZ_TIMEOUT)
        report = (self.workdir / f"{self.name}.log").read_text()
        summary = self.workdir / f"{self.name}.json"
        assert summary.exists(), f"{self.name}: schemathesis wrote no summary\n{report}"
        return code, report, json.loads(summary.read_text())


def seed_jobs(organization: Organization) -> tuple[list[str], list[str]]:
    """IDs of a complete job with results, evidence and VEX, of one job in every other state,
    and of the VEX document."""
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
    jobs = [imported, *(make_job(organization, status=state) for state in states)]
    return [str(job.pk) for job in jobs], [str(imported.generated_vex_id)]


def fuzz_config(identity: str, job_ids: list[str], vex_ids: list[str], *, stranger: bool) -> str:
    """The stranger sends valid requests only (invalid ones are the owner's run's to make), in the
    coverage and stateful phases. Not in the fuzzing phase: where every answer is a 404,
    schemathesis 4.32 (which steers towards successes) stalls there for minutes, drawing cases
    and sending none, as seen with py-spy on three operations."""
    return CONFIG.format(
        seed=SEED,
        job_ids=json.dumps(job_ids),
        vex_ids=json.dumps(vex_ids),
        fuzz_credentials=json.dumps(not stranger),
        mode="positive" if stranger else "all",
        fuzzing=json.dumps(not stranger),
        job_reads=json.dumps(JOB_READS),
        valid_also_gets="".join(
            VALID_ALSO_GETS_BLOCK.format(
                operation=operation, statuses=json.dumps(["2xx", *statuses, "5xx"])
            )
            for operation, statuses in VALID_ALSO_GETS.items()
        ),
        identity=identity,
    )


def start_fuzzer(server: LiveServer, name: str, config: str, workdir: Path) -> Fuzzer:
    """``st run`` in the background, reporting to ``workdir``."""
    (workdir / f"{name}.toml").write_text(config)
    argv = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(workdir / f"{name}.toml"),
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
        process = subprocess.Popen(
            argv,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO), "SCHEMATHESIS_HOOKS": HOOKS},
        )
    return Fuzzer(name, process, workdir)


def successes_naming(har: Path, ids: set[str]) -> list[str]:
    """Requests that got a 2xx while their path or response body names one of ``ids``."""
    found = []
    for entry in json.loads(har.read_text())["log"]["entries"]:
        request, response = entry["request"], entry["response"]
        seen = urlsplit(request["url"]).path + (response["content"].get("text") or "")
        if 200 <= response["status"] < 300 and any(value in seen for value in ids):
            found.append(f"{request['method']} {request['url']} -> {response['status']}")
    return found


def test_the_api_survives_schema_fuzzing_as_two_organizations(live_gunicorn, tmp_path, capsys):
    keys, owned = {}, {}
    for slug in ("acme", "globex"):
        organization = Organization.objects.create(
            name=slug.title(), slug=slug, monthly_analysis_quota=100_000
        )
        owned[slug] = seed_jobs(organization)
        keys[slug] = issue_key(organization, "fuzz").plaintext
    wfc = tmp_path / "auth.json"
    headers = {
        slug: [{"name": "Authorization", "value": f"Api-Key {key}"}] for slug, key in keys.items()
    }
    wfc.write_text(
        json.dumps(
            {"auth": [{"name": slug, "fixedHeaders": value} for slug, value in headers.items()]}
        )
    )
    configs = {
        "acme": fuzz_config(OWNER.format(path=wfc), *owned["acme"], stranger=False),
        "globex": fuzz_config(
            STRANGER.format(key=keys["globex"]),
            owned["acme"][0] + owned["globex"][0],
            owned["acme"][1] + owned["globex"][1],
            stranger=True,
        ),
    }

    fuzzers = [
        start_fuzzer(live_gunicorn, name, config, tmp_path) for name, config in configs.items()
    ]
    problems = []
    try:
        for fuzzer in fuzzers:
            code, report, summary = fuzzer.finish()
            cases = summary["test_cases"]
            numbers = (
                f"{fuzzer.name}: {summary['operations']['tested']} operations,"
                f" {cases['generated']} cases, {cases['unique_failures']} unique failures"
                f" in {cases['with_failures']} cases, {summary['running_time']:.0f}s"
            )
            with capsys.disabled():  # the figures belong in every CI log, not only on failure
                print(f"\n{numbers}")
            if code != 0:
                problems.append(f"{numbers}\n{report}")
    finally:
        for fuzzer in fuzzers:
            if fuzzer.process.poll() is None:
                fuzzer.process.kill()
                fuzzer.process.wait()
    leaks = successes_naming(tmp_path / "globex.har", {*owned["acme"][0], *owned["acme"][1]})
    with capsys.disabled():
        print(f"\nglobex: {len(leaks)} successful requests naming acme's objects")
    problems += [f"globex reached acme's object: {leak}" for leak in leaks]
    assert not problems, "\n\n".join(problems)
