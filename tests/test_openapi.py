"""The OpenAPI document: valid, public, and documenting the error envelope on every operation."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command

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
        assert {"401", "429", "500", "503"} <= errors, (method, path)
        for code in errors:
            content = responses[code]["content"]["application/json"]["schema"]
            assert content == {"$ref": ENVELOPE_REF}, (method, path, code)
        if "{job_id}" in path or "{vex_id}" in path:
            assert "404" in errors, (method, path)
        seen += 1
    assert seen == 10


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
