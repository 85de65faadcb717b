"""Every management command is scriptable: ``--json`` prints one JSON document, logs go to stderr.

Each case runs ``manage.py CMD --json`` as a real process on this test's database
(``child_env``), so that stdout is checked as a whole: ``json.loads(stdout)`` must
succeed, for a success and for a refusal alike, and the exit status is the documented
one: 0 done, 1 refused or failed, 2 a wrong command line. The processes of one test
start together: most of each one's time is the interpreter's start-up.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from analysis.models import AnalysisJob, ApiKey, Organization
from analysis.status import JobStatus
from tests.conftest import free_port, make_job

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
DONE, REFUSED, USAGE = 0, 1, 2
REFUSAL_KEYS = {"error", "message", "details", "request_id"}


@dataclass
class Run:
    returncode: int
    document: dict[str, Any]
    stderr: str

    @property
    def request_id(self) -> str:
        return self.document["request_id"]


@dataclass
class Invocation:
    argv: tuple[str, ...]
    env: dict[str, str]
    json: bool = True


def command(env: dict[str, str], *argv: str, **extra_env: str) -> Invocation:
    return Invocation(argv, {**env, **extra_env})


def run_all(*invocations: Invocation) -> list[Run]:
    """Start every invocation at once, then wait for each; stdout must be one JSON document."""
    processes = [
        subprocess.Popen(
            [sys.executable, "manage.py", *inv.argv, *(["--json"] if inv.json else [])],
            cwd=REPO,
            env=inv.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for inv in invocations
    ]
    runs = []
    for inv, process in zip(invocations, processes, strict=True):
        stdout, stderr = process.communicate(timeout=180)
        if not inv.json:
            runs.append(Run(process.returncode, {"stdout": stdout}, stderr))
            continue
        try:
            document = json.loads(stdout)  # the whole of stdout, nothing before or after
        except json.JSONDecodeError:
            pytest.fail(f"{inv.argv}: stdout is not one JSON document:\n{stdout}\n{stderr}")
        assert len(document["request_id"]) == 36, document
        runs.append(Run(process.returncode, document, stderr))
    return runs


def assert_done(run: Run) -> dict[str, Any]:
    assert run.returncode == DONE, run
    assert "error" not in run.document
    return run.document


def assert_refused(run: Run, returncode: int, code: str) -> dict[str, Any]:
    """The refusal envelope on stdout; its message on stderr too, for the operator."""
    assert run.returncode == returncode, run
    assert set(run.document) <= REFUSAL_KEYS, run.document
    assert (run.document["error"], bool(run.document["message"])) == (code, True)
    assert run.document["message"] in run.stderr
    return run.document.get("details", {})


def assert_usage_error(run: Run, option: str, message: str) -> None:
    details = assert_refused(run, USAGE, "VALIDATION_ERROR")
    [error] = details["errors"]
    assert error["field"] == option
    assert error["message"].startswith(message), error
    assert "usage: manage.py" in run.stderr


def job_of(organization: Organization, status: str, **fields: Any) -> AnalysisJob:
    return make_job(organization, status=status, profile="minimal", **fields)


def cluster(settings: Any, **extra: str) -> dict[str, str]:
    """The sandbox on, with the cluster the test's settings point at."""
    return {
        "SANDBOX_ENABLED": "true",
        "K8S_IN_CLUSTER": "false",
        "KUBECONFIG": settings.KUBECONFIG,
        **extra,
    }


def closed_broker() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


# -- job commands ------------------------------------------------------------------------


def test_cancel_job(child_env, organization):
    queued, missing = job_of(organization, "queued"), str(uuid.uuid4())
    done, unknown = run_all(
        command(child_env, "cancel_job", str(queued.pk)),
        command(child_env, "cancel_job", missing),
    )
    assert assert_done(done) == {
        "job_id": str(queued.pk),
        "status": "cancelled",
        "dry_run": False,
        "request_id": done.request_id,
    }
    queued.refresh_from_db()
    assert (queued.status, queued.cancelled_by) == ("cancelled", f"command:{done.request_id}")
    # The log line is on stderr, with the run's correlation ID.
    assert f"[{done.request_id}] Job {queued.pk} cancelled by command:" in done.stderr

    details = assert_refused(unknown, REFUSED, "RESOURCE_NOT_FOUND")
    assert details == {"resource_type": "Analysis Job", "resource_id": missing}
    assert unknown.document["message"] == f"No job {missing}."


def test_retry_job(child_env, organization, sandbox_ready, settings):
    failed, complete = job_of(organization, "failed"), job_of(organization, "complete")
    done, wrong_state = run_all(
        command(child_env, "retry_job", str(failed.pk), "--dry-run", **cluster(settings)),
        command(child_env, "retry_job", str(complete.pk), **cluster(settings)),
    )
    assert assert_done(done) == {
        "job_id": str(failed.pk),
        "status": "queued",
        "dry_run": True,
        "request_id": done.request_id,
    }
    failed.refresh_from_db()
    assert failed.status == "failed"  # rolled back
    details = assert_refused(wrong_state, REFUSED, "INVALID_JOB_STATE")
    assert details == {
        "job_id": str(complete.pk),
        "current_state": "complete",
        "required_state": ["cancelled", "failed"],
    }


def test_cleanup_jobs(child_env, organization):
    old = {status: job_of(organization, status, age_days=10) for status in JobStatus}
    done, active, text = run_all(
        command(child_env, "cleanup_jobs", "--older-than", "1", "--status", "complete", "failed"),
        command(child_env, "cleanup_jobs", "--older-than", "1", "--status", "complete", "running"),
        Invocation(("cleanup_jobs", "--older-than", "0"), child_env, json=False),
    )
    report = assert_done(done)
    assert sorted(report["job_ids"]) == sorted(str(old[s].pk) for s in ("complete", "failed"))
    assert set(AnalysisJob.objects.values_list("status", flat=True)) == {
        "queued",
        "running",
        "analyzing",
        "cancelled",
    }
    assert_usage_error(active, "--status", "running jobs are active and never deleted")
    # Without --json a refusal prints nothing on stdout: argparse's usage goes to stderr.
    assert (text.returncode, text.document["stdout"]) == (USAGE, "")
    assert "error: argument --older-than: must be at least 1, not 0" in text.stderr


# -- setup commands ----------------------------------------------------------------------


def test_create_api_key(child_env, organization):
    done, unknown = run_all(
        command(child_env, "create_api_key", "--organization", "newco", "--name", "ci",
                "--create-organization", "--quota", "0"),
        command(child_env, "create_api_key", "--organization", "nobody", "--name", "ci"),
    )  # fmt: skip
    report = assert_done(done)
    assert (report["organization"], report["name"]) == ("newco", "ci")
    key = ApiKey.objects.get(prefix=report["prefix"])
    assert key.organization.monthly_analysis_quota == 0  # 0 is a quota, not "the default"
    assert key.secret_hash != report["api_key"]
    details = assert_refused(unknown, REFUSED, "RESOURCE_NOT_FOUND")
    assert details == {"resource_type": "Organization", "resource_id": "nobody"}
    assert not Organization.objects.filter(slug="nobody").exists()


def test_import_kubescape_results(child_env, organization):
    files = ("--full", str(FIXTURES / "kubevuln_nginx-cve-small.json"),
             "--relevant", str(FIXTURES / "nginx-relevant-small.json"))  # fmt: skip
    image = ("--organization", "acme", "--image", "nginx:1.13", "--digest", "sha256:" + "3" * 64)
    done, unreadable = run_all(
        command(child_env, "import_kubescape_results", *image, *files),
        command(child_env, "import_kubescape_results", *image, *files[:2], "--relevant", "/nope"),
    )
    report = assert_done(done)
    assert report["summary"]["total_statements"] == 4
    job = AnalysisJob.objects.get(pk=report["job_id"])
    assert (job.status, job.submitted_by) == ("complete", f"command:{done.request_id}")
    assert done.request_id in done.stderr  # its log lines, not on stdout
    details = assert_refused(unreadable, REFUSED, "VALIDATION_ERROR")
    assert details["errors"] == [
        {"field": "--relevant", "code": "unreadable", "message": "No such file or directory"}
    ]
    assert AnalysisJob.objects.count() == 1


def test_print_sandbox_rbac(child_env):
    done, unknown_option = run_all(
        command(child_env, "print_sandbox_rbac", "--sandbox-namespace", "sandboxes"),
        command(child_env, "print_sandbox_rbac", "--verbose-please"),
    )
    kinds = {obj["kind"] for obj in assert_done(done)["objects"]}
    assert {"ServiceAccount", "Role", "RoleBinding", "ClusterRole"} <= kinds
    assert assert_refused(unknown_option, USAGE, "VALIDATION_ERROR") == {"errors": []}
    assert unknown_option.document["message"] == "unrecognized arguments: --verbose-please"


# -- maintenance commands ----------------------------------------------------------------


def test_dispatch_pending_jobs_reports_what_the_broker_refused(child_env, organization):
    pending = job_of(organization, "queued")
    AnalysisJob.objects.filter(pk=pending.pk).update(updated_at=timezone.now() - timedelta(1))
    # One after the other: the failed publish claims the job for a moment.
    [planned] = run_all(command(child_env, "dispatch_pending_jobs", "--dry-run"))
    [failed] = run_all(
        command(child_env, "dispatch_pending_jobs", CELERY_BROKER_URL=closed_broker())
    )
    assert assert_done(planned)["pending"] == [str(pending.pk)]
    report = failed.document
    assert failed.returncode == REFUSED
    assert (report["failed"], report["published"]) == ([str(pending.pk)], [])
    assert (report["error"], report["details"]) == (
        "SERVICE_UNAVAILABLE",
        {"service": "broker", "reason": "publish failed"},
    )
    assert report["message"] == "1 job(s) could not be published"
    assert "Traceback" not in failed.stderr
    pending.refresh_from_db()
    assert (pending.status, pending.dispatched_at) == ("queued", None)


def test_recover_stale_jobs(child_env, organization):
    stale = job_of(
        organization,
        "running",
        attempts=1,
        celery_task_id=str(uuid.uuid4()),
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    planned, not_positive = run_all(
        command(child_env, "recover_stale_jobs", "--dry-run", SANDBOX_ENABLED="false"),
        command(child_env, "recover_stale_jobs", "--stale-after", "0"),
    )
    assert assert_done(planned)["requeued"] == [str(stale.pk)]
    assert_usage_error(not_positive, "--stale-after", "must be more than 0, not 0")
    stale.refresh_from_db()
    assert stale.status == "running"


def test_reconcile_sandboxes(child_env, unreachable_cluster, settings):
    unreachable_env = cluster(settings, K8S_MAX_ATTEMPTS="1", K8S_REQUEST_TIMEOUT="2")
    nothing_to_do, unreachable = run_all(
        command(child_env, "reconcile_sandboxes", "--dry-run", SANDBOX_ENABLED="false"),
        command(child_env, "reconcile_sandboxes", **unreachable_env),
    )
    assert assert_done(nothing_to_do) == {
        "deleted": [],
        "failures": [],
        "dry_run": True,
        "sandbox_enabled": False,
        "request_id": nothing_to_do.request_id,
    }
    details = assert_refused(unreachable, REFUSED, "SERVICE_UNAVAILABLE")
    assert details == {"service": "kubernetes", "reason": "API unreachable during list deployments"}
    assert "Traceback" not in unreachable.stderr


def test_check_health_even_with_the_broker_down(child_env, clean_cache):
    healthy, broker_down = run_all(
        command(child_env, "check_health", SANDBOX_ENABLED="false",
                CELERY_TASK_ALWAYS_EAGER="true"),
        command(child_env, "check_health", SANDBOX_ENABLED="false",
                CELERY_BROKER_URL=closed_broker()),
    )  # fmt: skip
    assert assert_done(healthy)["status"] == "healthy"
    report = broker_down.document
    assert broker_down.returncode == REFUSED
    assert (report["status"], report["checks"]["celery"]["status"]) == ("unhealthy", "unhealthy")
    assert (report["error"], report["message"]) == ("SERVICE_UNAVAILABLE", "unhealthy: celery")
    # A line for the operator, not a traceback.
    assert "CommandError: SERVICE_UNAVAILABLE: unhealthy: celery" in broker_down.stderr
    assert "Traceback" not in broker_down.stderr
    assert len(broker_down.stderr.splitlines()) <= 3
