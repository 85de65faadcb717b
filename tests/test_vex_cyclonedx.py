"""The CycloneDX VEX: valid for cyclonedx-python-lib, the same verdicts as the OpenVEX, served."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import given, settings

from analysis.kubescape.readers import read_manifest
from analysis.models import AnalysisJob, VexDocument
from analysis.vex.builder import build
from analysis.vex.cyclonedx import InvalidCycloneDxDocument, cyclonedx_vex, validate_bom
from tests.conftest import assert_envelope, response_json
from tests.test_vex_builder import INFO, manifest_pairs

FIXTURES = Path(__file__).parent / "fixtures"
DIGEST = "sha256:9f6ad1cdf02a3a6d072aa09fd5ff7e18ce0b22a90432164144197b17735fc4f0"
CDX = "application/vnd.cyclonedx+json"
STATES = {"affected": "exploitable", "not_affected": "not_affected"}


@pytest.fixture
def imported(api, sandbox_disabled) -> AnalysisJob:
    """The storage example pair (143 matches, 13 loaded), imported through the API."""
    response = api.post(
        "/api/v1/analysis/import",
        {
            "image_ref": "nginx:latest",
            "image_digest": DIGEST,
            "full_manifest": SimpleUploadedFile(
                "full.yaml",
                (FIXTURES / "storage_vulnerabilitymanifest_01-example.yaml").read_bytes(),
            ),
            "relevant_manifest": SimpleUploadedFile(
                "relevant.json", (FIXTURES / "example-relevant-manifest.json").read_bytes()
            ),
        },
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    return AnalysisJob.objects.get(pk=response.json()["job_id"])


def fetch_both(api, job: AnalysisJob) -> tuple[dict, dict]:
    openvex = response_json(api.get(f"/api/v1/vex/{job.generated_vex_id}"))
    cyclonedx = api.get(f"/api/v1/vex/{job.generated_vex_id}?format=cyclonedx")
    assert cyclonedx.status_code == 200
    assert cyclonedx["Content-Type"] == CDX
    return openvex, response_json(cyclonedx)


def test_the_bom_validates_with_cyclonedx_python_lib_and_carries_the_same_verdicts(api, imported):
    openvex, bom = fetch_both(api, imported)

    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is None
    assert (bom["bomFormat"], bom["specVersion"]) == ("CycloneDX", "1.6")
    assert bom["serialNumber"] == f"urn:uuid:{imported.generated_vex_id}"
    statements = openvex["statements"]
    assert len(bom["vulnerabilities"]) == len(statements) == 143
    assert (
        Counter(v["analysis"]["state"] for v in bom["vulnerabilities"])
        == Counter(STATES[s["status"]] for s in statements)
        == {"not_affected": 130, "exploitable": 13}
    )
    verdicts = {
        (s["vulnerability"]["name"], s["products"][0]["subcomponents"][0]["@id"]): (
            STATES[s["status"]],
            s["status_notes"],
        )
        for s in statements
    }
    assert {
        (v["id"], v["affects"][0]["ref"]): (v["analysis"]["state"], v["analysis"]["detail"])
        for v in bom["vulnerabilities"]
    } == verdicts


def test_the_image_is_the_metadata_component_and_packages_are_components(api, imported):
    _, bom = fetch_both(api, imported)
    image = bom["metadata"]["component"]

    assert (image["type"], image["name"], image["version"]) == ("container", "nginx", DIGEST)
    assert image["purl"] == (
        f"pkg:oci/nginx@{DIGEST}?repository_url=docker.io/library/nginx&tag=latest"
    )
    assert image["hashes"] == [{"alg": "SHA-256", "content": DIGEST[7:]}]
    refs = {c["bom-ref"] for c in bom["components"]}
    assert {c["purl"] for c in bom["components"]} == refs  # bom-ref is the unqualified purl
    assert all("?" not in ref for ref in refs)
    assert {v["affects"][0]["ref"] for v in bom["vulnerabilities"]} == refs
    [root] = [d for d in bom["dependencies"] if d["ref"] == image["bom-ref"]]
    assert set(root["dependsOn"]) == refs


def test_each_vulnerability_is_something_dependency_track_applies(api, imported):
    """DT skips entries without a known source; it reads state, justification and detail."""
    _, bom = fetch_both(api, imported)
    for vulnerability in bom["vulnerabilities"]:
        assert vulnerability["source"]["name"] == "NVD"  # every id here is a CVE
        analysis = vulnerability["analysis"]
        if analysis["state"] == "not_affected":
            assert analysis["justification"] == "code_not_reachable"
            assert "was not loaded during the observed execution" in analysis["detail"]
        else:
            assert "justification" not in analysis
            assert vulnerability["recommendation"].startswith("Upgrade ")


@pytest.mark.parametrize("how", ["query", "accept"])
def test_download_names_the_file_after_the_format(api, imported, how):
    vex_id = imported.generated_vex_id
    if how == "query":
        response = api.get(f"/api/v1/vex/{vex_id}?format=cyclonedx&download=true")
    else:
        response = api.get(f"/api/v1/vex/{vex_id}?download=true", HTTP_ACCEPT=CDX)
    assert response["Content-Type"] == CDX
    assert response["Content-Disposition"] == f'attachment; filename="vex-{vex_id}.cdx.json"'
    openvex = api.get(f"/api/v1/vex/{vex_id}?format=openvex&download=true")
    assert openvex["Content-Type"] == "application/json"
    assert openvex["Content-Disposition"] == f'attachment; filename="vex-{vex_id}.json"'
    assert response_json(openvex)["@context"] == "https://openvex.dev/ns/v0.2.0"


def test_an_unknown_format_is_a_validation_error_naming_the_field(api, imported):
    response = api.get(f"/api/v1/vex/{imported.generated_vex_id}?format=spdx")
    assert_envelope(
        response,
        400,
        "VALIDATION_ERROR",
        {
            "errors": [
                {
                    "field": "format",
                    "code": "invalid_choice",
                    "message": "Must be one of: openvex, cyclonedx, json.",
                }
            ]
        },
    )


def test_format_json_is_openvex_and_an_unknown_format_needs_a_key_first(api, client, imported):
    vex_id = imported.generated_vex_id
    as_json = api.get(f"/api/v1/vex/{vex_id}?format=json")
    assert (as_json.status_code, as_json["Content-Type"]) == (200, "application/json")
    assert response_json(as_json) == response_json(api.get(f"/api/v1/vex/{vex_id}"))
    anonymous = client.get(f"/api/v1/vex/{vex_id}?format=spdx")
    assert_envelope(anonymous, 401, "UNAUTHORIZED")


def test_a_document_made_before_identifiers_and_hashes_still_converts():
    """Stored VEX from the first version: the product @id is the full purl, nothing else."""
    hex_digest = "cd" * 32
    document = {
        "timestamp": "2026-01-01T00:00:00Z",
        "statements": [
            {
                "vulnerability": {"name": "CVE-2024-1"},
                "products": [
                    {
                        "@id": f"pkg:oci/nginx@sha256%3A{hex_digest}"
                        "?repository_url=docker.io/library/nginx&tag=1.25",
                        "subcomponents": [{"@id": "pkg:deb/debian/tar@1.29b-1.1?arch=amd64"}],
                    }
                ],
                "status": "not_affected",
                "justification": "vulnerable_code_not_in_execute_path",
                "impact_statement": "Package tar@1.29b-1.1 was never loaded.",
            }
        ],
    }
    bom = cyclonedx_vex(document, uuid.uuid4())
    image = bom["metadata"]["component"]
    assert (image["name"], image["version"]) == ("nginx", f"sha256:{hex_digest}")
    [entry] = bom["vulnerabilities"]
    assert entry["analysis"]["detail"] == document["statements"][0]["impact_statement"]


def test_another_organizations_bom_is_a_404(other_api, imported):
    vex_id = str(imported.generated_vex_id)
    assert_envelope(
        other_api.get(f"/api/v1/vex/{vex_id}?format=cyclonedx"),
        404,
        "RESOURCE_NOT_FOUND",
        {"resource_type": "VEX document", "resource_id": vex_id},
    )


@pytest.mark.parametrize(
    ("vulnerability", "source"),
    [("CVE-2024-1", "NVD"), ("GHSA-aaaa-bbbb-cccc", "GITHUB"), ("DLA-3000-1", "OSV")],
)
def test_sources_and_aliases(vulnerability, source):
    hex_digest = "ab" * 32
    product = {
        "@id": f"pkg:oci/x@sha256%3A{hex_digest}",
        "identifiers": {"purl": f"pkg:oci/x@sha256%3A{hex_digest}?repository_url=r/x"},
        "hashes": {"sha-256": hex_digest},
    }
    document = {
        "timestamp": "2026-01-01T00:00:00Z",
        "statements": [
            {
                "vulnerability": {"name": vulnerability, "aliases": ["CVE-2023-9"]},
                "products": [{**product, "subcomponents": [{"@id": "pkg:pypi/flask@2.0"}]}],
                "status": "not_affected",
                "justification": "vulnerable_code_not_in_execute_path",
                "status_notes": "why",
            }
        ],
    }
    [entry] = cyclonedx_vex(document, uuid.uuid4())["vulnerabilities"]
    assert entry["source"]["name"] == source
    assert entry["references"] == [
        {
            "id": "CVE-2023-9",
            "source": {"name": "NVD", "url": "https://nvd.nist.gov/vuln/detail/CVE-2023-9"},
        }
    ]


def test_a_bom_that_breaks_the_schema_tells_the_client_nothing_of_it():
    """A 5xx reveals nothing: the schema's complaint may quote imported data; the log has it."""
    with pytest.raises(InvalidCycloneDxDocument) as excinfo:
        validate_bom({"bomFormat": "CycloneDX", "specVersion": "1.6", "version": "secret-ish"})

    envelope = excinfo.value.to_dict("req-1")
    assert (envelope["error"], envelope["details"]) == (
        "INTERNAL_ERROR",
        {"service": "vex-builder"},
    )
    assert envelope["message"] == "The CycloneDX form of this VEX document could not be built."
    assert "secret-ish" in str(excinfo.value)  # what the traceback in the log says


def test_a_bom_that_breaks_the_schema_or_uniqueness_is_refused():
    with pytest.raises(InvalidCycloneDxDocument, match="at specVersion"):
        validate_bom({"bomFormat": "CycloneDX", "specVersion": 1.6})
    duplicate = {"type": "library", "name": "a", "bom-ref": "a"}
    with pytest.raises(InvalidCycloneDxDocument, match="at components/1: items must be unique"):
        validate_bom(
            {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [duplicate, duplicate]}
        )


@settings(max_examples=40, deadline=None, database=None)
@given(manifest_pairs())
def test_property_every_bom_validates_and_round_trips_the_counts(pair):
    raw_full, raw_rel, *_ = pair
    result = build(
        read_manifest(raw_full, "full_manifest"), read_manifest(raw_rel, "relevant_manifest"), INFO
    )
    if result.document is None:
        return
    bom = cyclonedx_vex(result.document, uuid.UUID(int=1))

    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is None
    assert Counter(v["analysis"]["state"] for v in bom["vulnerabilities"]) == Counter(
        STATES[s["status"]] for s in result.document["statements"]
    )


def test_the_bom_is_built_once_and_then_served_as_stored(api, imported):
    vex = VexDocument.objects.get(pk=imported.generated_vex_id)
    assert vex.cyclonedx is None  # nothing is built until someone asks
    _, first = fetch_both(api, imported)

    vex.refresh_from_db()
    assert vex.cyclonedx == first
    VexDocument.objects.filter(pk=vex.pk).update(cyclonedx={**first, "version": 7})
    _, second = fetch_both(api, imported)
    assert second == {**first, "version": 7}
