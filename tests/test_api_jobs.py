"""The analysis API as its clients use it: submit, inspect, list, cancel, retry, fetch."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from analysis.models import AnalysisEvidence, AnalysisJob, MonthlyUsage, VexDocument
from analysis.results import store_results
from analysis.status import JobStatus
from tests.conftest import assert_envelope, make_job, response_json

DIGEST = "sha256:" + "a" * 64
VALID = {"image_ref": "ghcr.io/acme/app:1.2.3", "image_digest": DIGEST}
SUBMIT = "/api/v1/analysis/submit"


def submit(api, **overrides) -> dict:
    response = api.post(SUBMIT, {**VALID, **overrides}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def api_job(organization, **fields) -> AnalysisJob:
    defaults = {"image_ref": VALID["image_ref"], "image_digest": DIGEST, "profile": "standard"}
    return make_job(organization, **{**defaults, **fields})


pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox_ready")]


def test_submit_creates_a_queued_job(api, organization):
    response = api.post(
        SUBMIT,
        {**VALID, "profile": "comprehensive", "config": {}},
        format="json",
        HTTP_X_REQUEST_ID="submit-trace-1",
    )
    body = response.json()
    assert response.status_code == 201
    assert body["status"] == "queued"
    assert body["image_ref"] == VALID["image_ref"]
    assert body["image_digest"] == DIGEST
    assert body["profile"] == "comprehensive"
    assert body["config"]["analysis_duration"] == 900
    assert body["estimated_duration_minutes"] == 17
    assert body["created_at"].endswith("Z")
    job = AnalysisJob.objects.get(pk=body["job_id"])
    assert job.organization == organization
    assert job.request_id == "submit-trace-1"
    assert job.submitted_by.startswith("api-key:test(")
    assert MonthlyUsage.objects.get(organization=organization).analyses == 1


def test_environment_values_are_never_returned(api):
    body = submit(api, config={"environment": {"DB_PASSWORD": "hunter2", "MODE": "x"}})
    assert body["config"]["environment"] == {"DB_PASSWORD": "[REDACTED]", "MODE": "[REDACTED]"}
    listed = api.get("/api/v1/analysis").content.decode()
    detail = api.get(f"/api/v1/analysis/{body['job_id']}").content.decode()
    assert "hunter2" not in listed + detail
    stored = AnalysisJob.objects.get(pk=body["job_id"]).config["environment"]
    assert stored == {"DB_PASSWORD": "hunter2", "MODE": "x"}  # the sandbox still gets them


def test_status_of_an_unknown_job_is_404(api):
    missing = "6f1c2b0e-0000-4000-8000-000000000000"
    response = api.get(f"/api/v1/analysis/{missing}/status")
    assert_envelope(
        response,
        404,
        "RESOURCE_NOT_FOUND",
        {"resource_type": "Analysis Job", "resource_id": missing},
    )


def test_a_malformed_job_id_is_404_too(api):
    response = api.get("/api/v1/analysis/not-a-uuid")
    assert_envelope(
        response,
        404,
        "RESOURCE_NOT_FOUND",
        {"resource_type": "Analysis Job", "resource_id": "not-a-uuid"},
    )


def test_status_reports_progress(api, organization):
    job = api_job(
        organization,
        status=JobStatus.RUNNING,
        progress_percent=40,
        current_phase="deploy",
        started_at=timezone.now(),
    )
    body = api.get(f"/api/v1/analysis/{job.pk}/status").json()
    assert body["job_id"] == str(job.pk)
    assert (body["status"], body["progress_percent"], body["current_phase"]) == (
        "running",
        40,
        "deploy",
    )
    assert body["started_at"] is not None
    assert body["completed_at"] is None
    assert (body["error_code"], body["error_message"]) == ("", "")


def test_results_before_completion_are_409(api):
    job_id = submit(api)["job_id"]
    response = api.get(f"/api/v1/analysis/{job_id}/results")
    assert_envelope(
        response,
        409,
        "INVALID_JOB_STATE",
        {"job_id": job_id, "current_state": "queued", "required_state": "complete"},
    )


RESULT = {
    "cve_id": "CVE-2024-0001",
    "status": "affected",
    "severity": "High",
    "package_name": "openssl",
}


def test_results_of_a_complete_job(api, organization):
    vex_id = "0b7a1f44-0000-4000-8000-00000000abcd"
    job = api_job(
        organization,
        status=JobStatus.COMPLETE,
        summary={"total": 1},
        generated_vex_id=vex_id,
        completed_at=timezone.now(),
    )
    store_results(job, [RESULT])
    body = api.get(f"/api/v1/analysis/{job.pk}/results").json()
    assert body["summary"] == {"total": 1}
    assert body["reachability_results"] == [RESULT]
    assert (body["next"], body["previous"]) == (None, None)
    assert body["generated_vex_id"] == vex_id
    assert body["completed_at"] is not None


def test_cancel_a_queued_job(api):
    job_id = submit(api)["job_id"]
    response = api.delete(f"/api/v1/analysis/{job_id}")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "cancelled"
    assert body["cancelled_at"] is not None
    job = AnalysisJob.objects.get(pk=job_id)
    assert job.cancelled_by.startswith("api-key:test(")
    again = api.delete(f"/api/v1/analysis/{job_id}")
    assert_envelope(again, 409, "INVALID_JOB_STATE")
    assert again.json()["details"]["current_state"] == "cancelled"


def test_list_after_three_submits_and_filters(api, organization):
    ids = [submit(api)["job_id"] for _ in range(3)]
    api_job(organization, status=JobStatus.FAILED, profile="minimal")
    listed = api.get("/api/v1/analysis").json()
    assert len(listed["results"]) == 4
    assert [job["job_id"] for job in listed["results"][1:]] == ids[::-1]

    for query in ("status=queued", "status_filter=queued"):
        queued = api.get(f"/api/v1/analysis?{query}").json()["results"]
        assert sorted(job["job_id"] for job in queued) == sorted(ids)
    assert [j["status"] for j in api.get("/api/v1/analysis?profile=minimal").json()["results"]] == [
        "failed"
    ]
    assert api.get(f"/api/v1/analysis?image_digest=sha256:{'b' * 64}").json()["results"] == []
    future = (timezone.now() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert api.get("/api/v1/analysis", {"created_after": future}).json()["results"] == []
    assert len(api.get("/api/v1/analysis", {"created_before": future}).json()["results"]) == 4


def test_list_is_cursor_paginated(api):
    for _ in range(3):
        submit(api)
    first = api.get("/api/v1/analysis?page_size=2").json()
    assert len(first["results"]) == 2
    assert first["previous"] is None
    second = api.get(first["next"]).json()
    assert len(second["results"]) == 1
    assert second["next"] is None
    seen = {j["job_id"] for j in first["results"]} | {j["job_id"] for j in second["results"]}
    assert len(seen) == 3


def test_list_rejects_bad_filters(api):
    response = api.get("/api/v1/analysis?status=sleeping")
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert body["details"]["errors"][0]["field"] == "status"


def test_retry_requeues_failed_and_refuses_queued(api, organization):
    failed = api_job(
        organization,
        status=JobStatus.FAILED,
        error_code="SANDBOX_ERROR",
        error_message="boom",
        attempts=2,
    )
    response = api.post(f"/api/v1/analysis/{failed.pk}/retry")
    assert response.status_code == 202
    failed.refresh_from_db()
    assert (failed.status, failed.error_code, failed.attempts) == ("queued", "", 0)

    queued = api_job(organization)
    refused = api.post(f"/api/v1/analysis/{queued.pk}/retry")
    assert_envelope(
        refused,
        409,
        "INVALID_JOB_STATE",
        {
            "job_id": str(queued.pk),
            "current_state": "queued",
            "required_state": ["cancelled", "failed"],
        },
    )


def test_retry_of_a_complete_job_is_409_even_without_a_sandbox(api, organization, settings):
    settings.SANDBOX_ENABLED = False
    job = api_job(organization, status=JobStatus.COMPLETE)
    assert_envelope(
        api.post(f"/api/v1/analysis/{job.pk}/retry"),
        409,
        "INVALID_JOB_STATE",
        {
            "job_id": str(job.pk),
            "current_state": "complete",
            "required_state": ["cancelled", "failed"],
        },
    )


def test_evidence_and_vex(api, organization):
    job = api_job(organization, status=JobStatus.COMPLETE)
    AnalysisEvidence.objects.create(
        job=job,
        evidence_type="relevant_manifest",
        data=json.dumps({"a": 1}),
        size_bytes=8,
        sha256="f" * 64,
        description="relevant",
    )
    vex = VexDocument.objects.create(
        job=job, document={"@context": "https://openvex.dev/ns/v0.2.0"}
    )
    evidence = api.get(f"/api/v1/analysis/{job.pk}/evidence").json()
    assert [(e["type"], e["size_bytes"], e["sha256"]) for e in evidence] == [
        ("relevant_manifest", 8, "f" * 64)
    ]
    document = api.get(f"/api/v1/vex/{vex.pk}")
    assert response_json(document) == {"@context": "https://openvex.dev/ns/v0.2.0"}
    assert "Content-Disposition" not in document
    download = api.get(f"/api/v1/vex/{vex.pk}?download=true")
    assert download["Content-Disposition"] == f'attachment; filename="vex-{vex.pk}.json"'


def test_another_organization_sees_nothing(api, other_api, organization):
    job = api_job(organization, status=JobStatus.FAILED)
    vex = VexDocument.objects.create(job=job, document={})
    for response in (
        other_api.get(f"/api/v1/analysis/{job.pk}"),
        other_api.get(f"/api/v1/analysis/{job.pk}/status"),
        other_api.get(f"/api/v1/analysis/{job.pk}/results"),
        other_api.get(f"/api/v1/analysis/{job.pk}/evidence"),
        other_api.delete(f"/api/v1/analysis/{job.pk}"),
        other_api.post(f"/api/v1/analysis/{job.pk}/retry"),
    ):
        assert_envelope(
            response,
            404,
            "RESOURCE_NOT_FOUND",
            {"resource_type": "Analysis Job", "resource_id": str(job.pk)},
        )
    assert_envelope(
        other_api.get(f"/api/v1/vex/{vex.pk}"),
        404,
        "RESOURCE_NOT_FOUND",
        {"resource_type": "VEX document", "resource_id": str(vex.pk)},
    )
    assert other_api.get("/api/v1/analysis").json()["results"] == []
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
