"""Operators' job commands: retry_job, cancel_job and cleanup_jobs."""

from __future__ import annotations

import json
import uuid
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from analysis.management.commands import cleanup_jobs
from analysis.models import AnalysisEvidence, AnalysisJob, MonthlyUsage, VexDocument
from tests.conftest import make_job

pytestmark = pytest.mark.django_db


def aged_job(organization, status: str = "queued", age_days: float = 0, **fields) -> AnalysisJob:
    return make_job(organization, status=status, age_days=age_days, profile="minimal", **fields)


def with_results(job: AnalysisJob, evidence: int = 1, vex: int = 1) -> AnalysisJob:
    for _ in range(evidence):
        AnalysisEvidence.objects.create(
            job=job, evidence_type="manifest", data="{}", size_bytes=2, sha256="f" * 64
        )
    for _ in range(vex):
        VexDocument.objects.create(job=job, document={})
    return job


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue().strip()


def run_json(command: str, *args: str) -> dict[str, Any]:
    report = json.loads(run(command, *args, "--json"))
    assert len(report.pop("request_id")) == 36
    return report


def refused(command: str, *args: str, returncode: int = 1) -> str:
    with pytest.raises(CommandError) as error:
        run(command, *args)
    assert error.value.returncode == returncode
    return str(error.value)


def table_sizes() -> tuple[int, int, int, int]:
    return (
        AnalysisJob.objects.count(),
        AnalysisEvidence.objects.count(),
        VexDocument.objects.count(),
        MonthlyUsage.objects.count(),
    )


# retry_job / cancel_job


@pytest.mark.usefixtures("sandbox_ready", "unconsumed_queue")
def test_retry_job_requeues_and_publishes(organization, django_capture_on_commit_callbacks):
    text_job = aged_job(organization, "failed", error_code="SANDBOX_ERROR", attempts=2)
    json_job = aged_job(organization, "cancelled")
    with django_capture_on_commit_callbacks(execute=True):  # the publish runs after commit
        assert run("retry_job", str(text_job.pk)) == f"Job {text_job.pk} requeued"
        assert run_json("retry_job", str(json_job.pk)) == {
            "job_id": str(json_job.pk),
            "status": "queued",
            "dry_run": False,
        }
    for job in (text_job, json_job):
        job.refresh_from_db()
        assert (job.status, job.error_code, job.attempts, job.completed_at) == (
            "queued",
            "",
            0,
            None,
        )
        assert job.dispatched_at is not None
        assert job.celery_task_id


@pytest.mark.usefixtures("sandbox_disabled")
def test_retry_job_refusals(organization):
    complete = aged_job(organization, "complete")
    assert refused("retry_job", str(complete.pk)).startswith(
        f"INVALID_JOB_STATE: Job {complete.pk} is complete"
    )  # checked before the sandbox
    failed = aged_job(organization, "failed")
    assert refused("retry_job", str(failed.pk)).startswith("SERVICE_UNAVAILABLE: ")
    failed.refresh_from_db()
    assert failed.status == "failed"


@pytest.mark.parametrize("command", ["retry_job", "cancel_job"])
def test_unknown_or_malformed_job_id(command):
    missing = str(uuid.uuid4())
    assert refused(command, missing) == f"RESOURCE_NOT_FOUND: No job {missing}."
    assert refused(command, "not-a-uuid") == "RESOURCE_NOT_FOUND: No job not-a-uuid."


def test_cancel_job(organization):
    queued, running = aged_job(organization), aged_job(organization, "running")
    assert run("cancel_job", str(queued.pk)) == f"Job {queued.pk} cancelled"
    out = StringIO()
    call_command("cancel_job", str(running.pk), "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert {k: report[k] for k in ("job_id", "status", "dry_run")} == {
        "job_id": str(running.pk),
        "status": "cancelled",
        "dry_run": False,
    }
    for job in (queued, running):
        job.refresh_from_db()
        assert job.status == "cancelled"
        assert job.cancelled_at is not None
        assert job.cancelled_by.startswith("command:")
    assert running.cancelled_by == f"command:{report['request_id']}"
    assert refused("cancel_job", str(queued.pk)).startswith(
        f"INVALID_JOB_STATE: Job {queued.pk} is cancelled"
    )


# cleanup_jobs


def test_cleanup_dry_run_then_the_real_run_deletes_exactly_that(organization):
    MonthlyUsage.objects.create(organization=organization, month="2024-01-01", analyses=7)
    old = [
        with_results(aged_job(organization, "complete", age_days=40), evidence=2, vex=1),
        with_results(aged_job(organization, "failed", age_days=40, completed_at=None), vex=0),
        aged_job(organization, "cancelled", age_days=31),
    ]
    kept = [
        with_results(aged_job(organization, "complete", age_days=29)),
        # created long ago, finished recently
        aged_job(organization, "failed", age_days=40, completed_at=timezone.now()),
        *(
            with_results(aged_job(organization, status, age_days=90))
            for status in ("queued", "running", "analyzing")
        ),
    ]
    before = table_sizes()

    planned = run_json("cleanup_jobs", "--older-than", "30", "--dry-run")
    expected_ids = [str(job.pk) for job in old]
    assert planned == {
        "jobs": 3,
        "evidence": 3,
        "vex_documents": 1,
        "job_ids": expected_ids,
        "dry_run": True,
    }
    assert table_sizes() == before

    done = run_json("cleanup_jobs", "--older-than", "30")
    assert done == {**planned, "dry_run": False}
    assert set(AnalysisJob.objects.all()) == set(kept)
    assert table_sizes() == (before[0] - 3, before[1] - 3, before[2] - 1, before[3])
    assert run_json("cleanup_jobs", "--older-than", "30")["jobs"] == 0


def test_cleanup_text_output_and_status_narrowing(organization):
    failed = with_results(aged_job(organization, "failed", age_days=10), evidence=2, vex=0)
    complete = aged_job(organization, "complete", age_days=10)
    cancelled = aged_job(organization, "cancelled", age_days=10)
    args = ("cleanup_jobs", "--older-than", "7", "--status", "failed")
    assert run(*args, "--dry-run") == (
        "1 job(s) would be deleted, with 2 evidence row(s) and 0 VEX document(s)"
    )
    assert run(*args) == "1 job(s) were deleted, with 2 evidence row(s) and 0 VEX document(s)"
    assert set(AnalysisJob.objects.all()) == {complete, cancelled}
    assert run_json(*args, "--status", "cancelled")["job_ids"] == [str(cancelled.pk)]
    assert list(AnalysisJob.objects.all()) == [complete]
    assert not AnalysisJob.objects.filter(pk=failed.pk).exists()


def test_cleanup_status_takes_several_values_or_the_option_repeated(organization):
    jobs = [aged_job(organization, status, age_days=10) for status in ("complete", "failed")]
    aged_job(organization, "cancelled", age_days=10)
    expected = sorted(str(job.pk) for job in jobs)
    for statuses in (("complete", "failed"), ("complete", "failed", "complete")):
        report = run_json("cleanup_jobs", "--older-than", "7", "--dry-run", "--status", *statuses)
        assert sorted(report["job_ids"]) == expected
    repeated = ("--status", "failed", "--status", "complete")
    assert sorted(run_json("cleanup_jobs", "--older-than", "7", *repeated)["job_ids"]) == expected
    assert list(AnalysisJob.objects.values_list("status", flat=True)) == ["cancelled"]


def test_cleanup_deletes_in_batches_and_lists_the_first_ids(organization, monkeypatch):
    monkeypatch.setattr(cleanup_jobs, "BATCH_SIZE", 2)
    monkeypatch.setattr(cleanup_jobs, "LISTED_IDS", 3)
    jobs = [with_results(aged_job(organization, "complete", age_days=10 + i)) for i in range(5)]
    oldest_first = [str(job.pk) for job in reversed(jobs)]
    planned = run_json("cleanup_jobs", "--older-than", "1", "--dry-run")
    assert planned["job_ids"] == oldest_first[:3]
    assert run_json("cleanup_jobs", "--older-than", "1") == {
        "jobs": 5,
        "evidence": 5,
        "vex_documents": 5,
        "job_ids": oldest_first[:3],
        "dry_run": False,
    }
    assert table_sizes()[:3] == (0, 0, 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--older-than", "0"), "argument --older-than: must be at least 1, not 0"),
        (("--older-than", "-3"), "argument --older-than: must be at least 1, not -3"),
        (
            ("--older-than", "5", "--status", "running"),
            "argument --status: running jobs are active and never deleted; "
            "choose from cancelled, complete, failed",
        ),
        (
            ("--older-than", "5", "--status", "complete", "--status", "queued"),
            "argument --status: queued jobs are active",
        ),
        (
            ("--older-than", "5", "--status", "complete", "analyzing"),
            "argument --status: analyzing jobs are active",
        ),
        (("--older-than", "5", "--status", "done"), "argument --status: unknown status 'done'"),
        (("--older-than", "5", "--status"), "argument --status: expected at least one argument"),
        (("--older-than", "soon"), "argument --older-than: invalid int value: 'soon'"),
        ((), "the following arguments are required: --older-than"),
    ],
)
def test_cleanup_invalid_arguments_are_usage_errors_and_change_nothing(organization, args, message):
    aged_job(organization, "complete", age_days=400)
    aged_job(organization, "running", age_days=400)
    assert refused("cleanup_jobs", *args, returncode=2).startswith(message)
    assert AnalysisJob.objects.count() == 2


@pytest.mark.usefixtures("sandbox_ready", "unconsumed_queue")
@pytest.mark.parametrize(
    ("command", "status", "outcome"),
    [("retry_job", "failed", "queued"), ("cancel_job", "queued", "cancelled")],
)
def test_dry_run_applies_the_rules_and_changes_nothing(
    organization, django_capture_on_commit_callbacks, command, status, outcome
):
    job = aged_job(organization, status=status)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        report = run_json(command, str(job.pk), "--dry-run")
    assert (report["status"], report["dry_run"]) == (outcome, True)
    assert callbacks == []  # no publish, no revoke
    job.refresh_from_db()
    assert job.status == status
    refused(command, str(aged_job(organization, status="complete").pk), "--dry-run")


def test_import_dry_run_prints_the_summary_and_stores_nothing(organization):
    fixtures = "tests/fixtures"
    report = run_json(
        "import_kubescape_results",
        "--organization",
        organization.slug,
        "--image",
        "nginx:1.13",
        "--digest",
        "sha256:" + "3" * 64,
        "--full",
        f"{fixtures}/kubevuln_nginx-cve-small.json",
        "--relevant",
        f"{fixtures}/nginx-relevant-small.json",
        "--dry-run",
    )
    assert (report["job_id"], report["dry_run"]) == (None, True)
    assert report["summary"]["total_statements"] == 4
    assert not AnalysisJob.objects.exists()
