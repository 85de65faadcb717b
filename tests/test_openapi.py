"""The OpenAPI document: valid, public, and documenting the error envelope on every operation."""

from __future__ import annotations

import re

import pytest
import yaml
from django.core.management import call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.image_reference import REFERENCE_PATTERN, InvalidReference, parse_image_reference

ENVELOPE_REF = "#/components/schemas/ErrorEnvelope"


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("schema") / "openapi.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_operation_documents_the_envelope_for_its_errors(schema):
    seen = 0
    for path, method, operation in operations(schema):
        responses = operation["responses"]
        errors = {code for code in responses if int(code) >= 400}
        assert {"401", "405", "406", "411", "413", "415", "429", "500", "503"} <= errors, (
            method,
            path,
        )
        for code in errors:
            content = responses[code]["content"]["application/json"]["schema"]
            assert content == {"$ref": ENVELOPE_REF}, (method, path, code)
        if "{job_id}" in path or "{vex_id}" in path:
            assert "404" in errors, (method, path)
        seen += 1
    assert seen == 11


def test_the_envelope_component_has_the_five_keys(schema):
    envelope = schema["components"]["schemas"]["ErrorEnvelope"]
    assert set(envelope["properties"]) == {"error", "message", "details", "timestamp", "request_id"}
    assert schema["components"]["securitySchemes"]["ApiKey"]["type"] == "apiKey"


def test_submit_documents_its_request_body(schema):
    body = schema["paths"]["/api/v1/analysis/submit"]["post"]["requestBody"]["content"]
    submit = body["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    fields = schema["components"]["schemas"][submit]["properties"]
    assert {"image_ref", "image_digest", "profile", "config", "sbom_id"} <= set(fields)


@pytest.mark.parametrize("url", ["/api/schema/", "/api/docs/"])
def test_schema_and_docs_are_public(client, url):
    assert client.get(url).status_code == 200


def test_identifiers_and_queries_carry_their_patterns_and_bounds(schema):
    components = schema["components"]["schemas"]
    submit = components["SubmitRequest"]["properties"]
    assert submit["image_digest"]["pattern"] == "^sha256:[a-f0-9]{64}$"
    assert submit["image_ref"]["pattern"].startswith("^(?:")
    assert submit["image_ref"]["maxLength"] == 512
    listing = {p["name"]: p for p in schema["paths"]["/api/v1/analysis"]["get"]["parameters"]}
    assert listing["image_digest"]["schema"]["pattern"] == "^sha256:[a-f0-9]{64}$"
    assert listing["page_size"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "default": 20,
    }
    results = schema["paths"]["/api/v1/analysis/{job_id}/results"]["get"]
    params = {p["name"]: p["schema"] for p in results["parameters"]}
    assert set(params) >= {"cursor", "page_size", "status", "severity"}
    assert params["page_size"]["maximum"] == 1000


@pytest.mark.parametrize(
    "reference",
    [
        "nginx",
        "nginx:1.27",
        "docker.io/library/nginx:1.27@sha256:" + "a" * 64,
        "localhost:5000/team/app_x:v1.2-rc",
        "[::1]:5000/app",
        "ghcr.io/acme/app@sha256:" + "b" * 64,
    ],
)
def test_the_reference_pattern_accepts_what_the_parser_accepts(schema, reference):
    pattern = schema["components"]["schemas"]["SubmitRequest"]["properties"]["image_ref"]
    assert re.search(pattern["pattern"], reference)
    parse_image_reference(reference.strip())  # as the API's fields do


@pytest.mark.parametrize(
    "reference",
    [
        "Nginx",
        "nginx:tägé",
        "nginx::1",
        "-x/app",
        "a b",
        "Acme/app",
        "a@sha512:" + "0" * 128,
    ],
)
def test_the_reference_pattern_refuses_what_the_parser_refuses(schema, reference):
    pattern = schema["components"]["schemas"]["SubmitRequest"]["properties"]["image_ref"]
    assert not re.search(pattern["pattern"], reference)
    with pytest.raises(InvalidReference):
        parse_image_reference(reference.strip())  # as the API's fields do


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reference=st.from_regex(REFERENCE_PATTERN).filter(lambda r: len(r) <= 512))
def test_every_reference_the_schema_allows_the_parser_accepts(reference):
    """What a client (or a fuzzer) builds from the schema's pattern is never refused."""
    parse_image_reference(reference.strip())  # as the API's fields do


def test_request_bodies_refuse_unknown_keys_in_the_schema_as_the_api_does(schema):
    from analysis.api.serializers import (
        AnalysisConfigSerializer,
        ImportSerializer,
        StrictSerializer,
        SubmitSerializer,
    )

    components = schema["components"]["schemas"]
    requests = {name for name in components if name.endswith("Request")}
    assert requests == {"SubmitRequest", "AnalysisConfigRequest", "ImportRequest"}
    assert all(components[name]["additionalProperties"] is False for name in requests)
    for serializer in (SubmitSerializer, AnalysisConfigSerializer, ImportSerializer):
        assert issubclass(serializer, StrictSerializer)
