"""Import of existing Kubescape results, through the API and the command; no cluster needed."""

from __future__ import annotations

import copy
import hashlib
import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from analysis import evidence
from analysis.evidence import canonical_bytes
from analysis.models import AnalysisJob, MonthlyUsage, VexDocument
from tests.conftest import assert_envelope, response_json
from tests.support.settings import override_reliability

FIXTURES = Path(__file__).parent / "fixtures"
IMPORT = "/api/v1/analysis/import"
DIGEST = "sha256:32fdf92b4e986e109e4db0865758020cb0c3b70d6ba80d02fe87bad5cc3dc228"
EXAMPLE_DIGEST = "sha256:9f6ad1cdf02a3a6d072aa09fd5ff7e18ce0b22a90432164144197b17735fc4f0"
SMALL_FULL = json.loads((FIXTURES / "kubevuln_nginx-cve-small.json").read_text())
SMALL_RELEVANT = json.loads((FIXTURES / "nginx-relevant-small.json").read_text())


def small_import(**overrides) -> dict:
    return {
        "image_ref": "docker.io/library/nginx:1.13",
        "image_digest": DIGEST,
        "full_manifest": SMALL_FULL,
        "relevant_manifest": SMALL_RELEVANT,
        **overrides,
    }


pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox_disabled")]


def test_json_import_creates_a_complete_job_with_evidence_and_vex(api, organization):
    response = api.post(IMPORT, small_import(), format="json")
    body = response.json()
    assert response.status_code == 201, body
    assert (body["status"], body["origin"]) == ("complete", "import")
    assert body["summary"]["total_statements"] == 4
    assert body["summary"]["by_status"]["affected"] == 1
    job = AnalysisJob.objects.get(pk=body["job_id"])
    assert str(job.generated_vex_id) == body["generated_vex_id"]
    assert MonthlyUsage.objects.get(organization=organization).analyses == 1

    results = api.get(f"/api/v1/analysis/{job.pk}/results").json()
    affected = [r for r in results["reachability_results"] if r["status"] == "affected"]
    assert [r["package_name"] for r in affected] == ["libssl1.1"]

    vex = response_json(api.get(f"/api/v1/vex/{job.generated_vex_id}"))
    assert len(vex["statements"]) == 4
    # The document's @id names where the API serves it.
    assert vex["@id"] == f"{settings.VEX_DOCUMENT_ID_BASE}/{job.generated_vex_id}"
    by_id = response_json(api.get(f"/api/v1/vex/{vex['@id'].rsplit('/', 1)[1]}"))
    assert by_id == vex
    assert VexDocument.objects.get(pk=job.generated_vex_id).statement_counts == {
        "affected": 1,
        "not_affected": 3,
    }

    evidence = {e["type"]: e for e in api.get(f"/api/v1/analysis/{job.pk}/evidence").json()}
    assert set(evidence) == {"full_manifest", "relevant_manifest"}
    raw = canonical_bytes(SMALL_FULL)
    assert evidence["full_manifest"]["sha256"] == hashlib.sha256(raw).hexdigest()
    assert evidence["full_manifest"]["size_bytes"] == len(raw)


def test_an_entry_cyclonedx_cannot_hold_is_reported_and_the_rest_served_in_both_forms(api):
    """A version past CycloneDX's 1,024 characters used to pass the import and fail every
    CycloneDX download with a 500 quoting it."""
    full = copy.deepcopy(SMALL_FULL)
    artifact = full["Content"]["matches"][0]["artifact"]
    artifact["purl"] = artifact["purl"].replace(f"@{artifact['version']}", "@" + "9" * 1100)
    assert "9" * 1100 in artifact["purl"]

    response = api.post(IMPORT, small_import(full_manifest=full), format="json")

    body = response.json()
    assert response.status_code == 201, body
    assert body["summary"]["malformed_entries"] == 1
    assert body["summary"]["malformed"] == [
        {
            "where": "full_manifest.spec.payload.matches.0",
            "reason": "artifact.purl's version is longer than 1024 characters",
        }
    ]
    vex = f"/api/v1/vex/{body['generated_vex_id']}"
    openvex = response_json(api.get(vex))
    bom = response_json(api.get(vex, {"format": "cyclonedx"}))
    assert len(bom["vulnerabilities"]) == len(openvex["statements"]) == 3


def test_stored_evidence_and_results_read_back_as_built(api):
    """Evidence is stored as its canonical text and results by plain inserts: same values."""
    body = api.post(IMPORT, small_import(), format="json").json()
    job = AnalysisJob.objects.get(pk=body["job_id"])
    stored = {e.evidence_type: e for e in job.evidence.all()}
    assert stored["full_manifest"].data == evidence.canonical_text(SMALL_FULL)
    assert stored["relevant_manifest"].data == evidence.canonical_text(SMALL_RELEVANT)
    rows = list(job.results.order_by("position"))
    assert [row.position for row in rows] == list(range(4))
    for row in rows:
        assert (row.cve_id, row.package_name, row.status, row.severity) == (
            row.data["cve_id"],
            row.data["package_name"],
            row.data["status"],
            row.data["severity"],
        )
    assert job.results.filter(data__status="affected").count() == 1


def test_size_and_hash_pieces_are_those_of_the_canonical_bytes(monkeypatch):
    monkeypatch.setattr(evidence, "HASH_CHUNK", 3)  # cuts between multi-byte characters
    document = {"é": ["ünïcode ✓ 🎉", 1, 2.5, None, True], "a": {"z": '\n"', "b": []}}
    text = evidence.canonical_text(document)
    size, sha256 = evidence.size_and_sha256(text)
    raw = canonical_bytes(document)
    assert (text.encode(), size, sha256) == (raw, len(raw), hashlib.sha256(raw).hexdigest())


def test_multipart_import_takes_yaml_and_json_files(api):
    response = api.post(
        IMPORT,
        {
            "image_ref": "nginx:latest",
            "image_digest": EXAMPLE_DIGEST,
            "full_manifest": SimpleUploadedFile(
                "full.yaml",
                (FIXTURES / "storage_vulnerabilitymanifest_01-example.yaml").read_bytes(),
            ),
            "relevant_manifest": SimpleUploadedFile(
                "relevant.json", (FIXTURES / "example-relevant-manifest.json").read_bytes()
            ),
            "kubescape_vex": SimpleUploadedFile(
                "vex.yaml",
                (
                    FIXTURES / "storage_openvulnerabilityexchangecontainer_example-01.yaml"
                ).read_bytes(),
            ),
            "completion": "partial",
        },
        format="multipart",
    )
    body = response.json()
    assert response.status_code == 201, body
    assert body["summary"]["total_statements"] == 143
    assert body["summary"]["by_status"] == {
        "affected": 13,
        "not_affected": 130,
        "under_investigation": 0,
        "fixed": 0,
    }
    assert body["summary"]["evidence_completeness"] == "partial"
    job = AnalysisJob.objects.get(pk=body["job_id"])
    assert {e.evidence_type for e in job.evidence.all()} == {
        "full_manifest",
        "relevant_manifest",
        "kubescape_vex",
    }


def test_a_manifest_without_matches_completes_without_a_vex(api):
    empty = {"Content": {"matches": None}}
    body = api.post(
        IMPORT, small_import(full_manifest=empty, relevant_manifest=empty), format="json"
    ).json()
    assert body["status"] == "complete"
    assert body["summary"]["total_statements"] == 0
    assert body["generated_vex_id"] is None


def test_import_needs_an_api_key(client):
    response = client.post(IMPORT, small_import(), content_type="application/json")
    assert_envelope(response, 401, "UNAUTHORIZED", {})


def test_import_counts_against_the_quota(api, organization):
    organization.monthly_analysis_quota = 0
    organization.save()
    response = api.post(IMPORT, small_import(), format="json")
    assert_envelope(
        response,
        429,
        "QUOTA_EXCEEDED",
        {"quota_type": "monthly_analyses", "limit": 0, "current": 0},
    )
    assert not AnalysisJob.objects.exists()


def test_oversized_import_is_413(api, settings):
    override_reliability(settings, BODY_SIZE_LIMITS={IMPORT: 1024})
    response = api.post(IMPORT, small_import(), format="json")
    assert_envelope(response, 413, "PAYLOAD_TOO_LARGE", {"limit_bytes": 1024})


def test_malformed_json_is_400(api):
    response = api.generic("POST", IMPORT, '{"image_ref": ', content_type="application/json")
    assert_envelope(response, 400, "MALFORMED_REQUEST", {})


@pytest.mark.parametrize(
    ("override", "field", "code"),
    [
        ({"full_manifest": {"spec": {}}}, "full_manifest", "invalid"),
        (
            {"relevant_manifest": {"Content": {"matches": {"not": "a list"}}}},
            "relevant_manifest.spec.payload.matches",
            "invalid",
        ),
        ({"full_manifest": "[1, 2"}, "full_manifest", "unparsable"),
        ({"full_manifest": "[1, 2]"}, "full_manifest", "not_object"),
        ({"full_manifest": 42}, "full_manifest", "invalid"),
        ({"relevant_manifest": None}, "relevant_manifest", "null"),
        ({"image_digest": "sha256:short"}, "image_digest", "invalid_digest"),
    ],
)
def test_unreadable_input_names_the_field(api, override, field, code):
    response = api.post(IMPORT, small_import(**override), format="json")
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert [(e["field"], e["code"]) for e in body["details"]["errors"]] == [(field, code)]
    assert not AnalysisJob.objects.exists()


def test_an_unparsable_uploaded_file_is_named(api):
    response = api.post(
        IMPORT,
        {
            "image_ref": "nginx:1.13",
            "image_digest": DIGEST,
            "full_manifest": SimpleUploadedFile("full.yaml", b"spec: [unclosed"),
            "relevant_manifest": SimpleUploadedFile("r.json", json.dumps(SMALL_RELEVANT).encode()),
        },
        format="multipart",
    )
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert [(e["field"], e["code"]) for e in body["details"]["errors"]] == [
        ("full_manifest", "unparsable")
    ]


def test_command_imports_and_prints_the_job(organization):
    out = StringIO()
    call_command(
        "import_kubescape_results",
        "--organization",
        "acme",
        "--image",
        "nginx:1.13",
        "--digest",
        DIGEST,
        "--full",
        str(FIXTURES / "kubevuln_nginx-cve-small.json"),
        "--relevant",
        str(FIXTURES / "nginx-relevant-small.json"),
        "--json",
        stdout=out,
    )
    report = json.loads(out.getvalue())
    job = AnalysisJob.objects.get(pk=report["job_id"])
    assert job.status == "complete"
    assert report["summary"]["total_statements"] == 4
    assert report["generated_vex_id"] == str(job.generated_vex_id)
    assert job.submitted_by == f"command:{report['request_id']}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--organization", "nobody"], "No organization 'nobody'."),
        (["--full", "/nonexistent.json"], "Cannot read /nonexistent.json"),
        (["--digest", "sha256:nope"], "Invalid image"),
    ],
)
def test_command_errors_are_plain(organization, args, message):
    base = {
        "--organization": "acme",
        "--image": "nginx:1.13",
        "--digest": DIGEST,
        "--full": str(FIXTURES / "kubevuln_nginx-cve-small.json"),
        "--relevant": str(FIXTURES / "nginx-relevant-small.json"),
    }
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    with pytest.raises(CommandError, match=message):
        call_command("import_kubescape_results", *[x for kv in base.items() for x in kv])
