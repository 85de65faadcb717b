"""Submission validation: field-level envelope errors, presets and overrides."""

from __future__ import annotations

import pytest

from analysis.api.serializers import SubmitSerializer
from analysis.profiles import normalize_config
from reliability.error_mapping import flatten_errors
from tests.conftest import assert_envelope

DIGEST = "sha256:" + "a" * 64
VALID = {"image_ref": "ghcr.io/acme/app:1.2.3", "image_digest": DIGEST}
SUBMIT = "/api/v1/analysis/submit"


def errors_of(data: dict) -> list[dict]:
    serializer = SubmitSerializer(data=data)
    assert not serializer.is_valid()
    return flatten_errors(serializer.errors)


def config_of(data: dict) -> dict:
    serializer = SubmitSerializer(data=data)
    assert serializer.is_valid(), serializer.errors
    return serializer.validated_data["config"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field", "code"),
    [
        ({**VALID, "image_digest": "sha256:abc"}, "image_digest", "invalid_digest"),
        ({**VALID, "image_digest": "sha256:" + "A" * 64}, "image_digest", "invalid_digest"),
        ({**VALID, "image_digest": "md5:" + "a" * 64}, "image_digest", "invalid_digest"),
        ({"image_digest": DIGEST}, "image_ref", "required"),
        ({**VALID, "image_ref": "Not A Reference"}, "image_ref", "invalid_reference"),
        ({**VALID, "image_ref": "app@sha256:" + "b" * 64}, "image_ref", "digest_mismatch"),
        ({**VALID, "profile": "turbo"}, "profile", "invalid_choice"),
        ({**VALID, "config": {"ports": [99999]}}, "config.ports.0", "max_value"),
        ({**VALID, "config": {"ports": [80, 0]}}, "config.ports.1", "min_value"),
        ({**VALID, "config": {"ports": [80, 80]}}, "config.ports", "unique"),
        ({**VALID, "config": {"analysis_duration": 89}}, "config.analysis_duration", "min_value"),
        ({**VALID, "config": {"analysis_duration": 3601}}, "config.analysis_duration", "max_value"),
        ({**VALID, "config": {"test_timeout": 89}}, "config.test_timeout", "min_value"),
        ({**VALID, "config": {"test_timeout": 3601}}, "config.test_timeout", "max_value"),
        (
            {**VALID, "config": {"test_timeout": 300, "analysis_duration": 600}},
            "config.test_timeout",
            "mismatch",
        ),
        (
            {**VALID, "config": {"health_check_path": "healthz"}},
            "config.health_check_path",
            "invalid",
        ),
        ({**VALID, "config": {"environment": {"1BAD": "x"}}}, "config.environment", "invalid_name"),
        (
            {**VALID, "config": {"environment": {f"V{i}": "x" for i in range(65)}}},
            "config.environment",
            "max_length",
        ),
        (
            {**VALID, "config": {"environment": {"BIG": "x" * 4097}}},
            "config.environment.BIG",
            "max_length",
        ),
        ({**VALID, "config": {"bogus": True}}, "config.bogus", "unknown_field"),
        ({**VALID, "callback_url": "http://x"}, "callback_url", "unknown_field"),
        ({**VALID, "config": {"ports": list(range(1, 34))}}, "config.ports", "max_length"),
    ],
)
def test_invalid_submission_names_the_field(api, payload, field, code):
    response = api.post(SUBMIT, payload, format="json")
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert {"field": field, "code": code} in [
        {"field": e["field"], "code": e["code"]} for e in body["details"]["errors"]
    ], body


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"ports": ["not a port"] * 20_000}, "config.ports"),
        ({"environment": {f"V{i}": ["not a string"] for i in range(20_000)}}, "config.environment"),
    ],
)
def test_an_oversized_collection_is_refused_by_its_length_before_its_items(api, config, field):
    """Were the 20,000 items validated first, each would be an error of its own (and the
    ports' uniqueness check, run on them, used to take minutes)."""
    response = api.post(SUBMIT, {**VALID, "config": config}, format="json")

    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert [(e["field"], e["code"]) for e in body["details"]["errors"]] == [(field, "max_length")]


@pytest.mark.django_db
def test_environment_values_never_appear_in_errors(api):
    response = api.post(
        SUBMIT,
        {**VALID, "config": {"environment": {"bad-name": "hunter2-secret", "OK": "fine"}}},
        format="json",
    )
    assert_envelope(response, 400, "VALIDATION_ERROR")
    assert "hunter2-secret" not in response.content.decode()


@pytest.mark.parametrize(
    ("profile", "duration", "fuzzing", "profiling", "pentesting", "coverage", "health"),
    [
        ("minimal", 120, False, False, False, False, 30),
        ("standard", 300, True, True, False, False, 60),
        ("comprehensive", 900, True, True, True, True, 120),
        ("custom", 300, False, True, False, False, 60),
    ],
)
def test_presets(profile, duration, fuzzing, profiling, pentesting, coverage, health):
    config = config_of({**VALID, "profile": profile})
    assert config["analysis_duration"] == config["test_timeout"] == duration
    assert config["enable_fuzzing"] is fuzzing
    assert config["enable_profiling"] is profiling
    assert config["enable_pentesting"] is pentesting
    assert config["enable_code_coverage"] is coverage
    assert config["health_check_timeout"] == health


def test_default_profile_is_standard():
    serializer = SubmitSerializer(data=VALID)
    assert serializer.is_valid()
    assert serializer.validated_data["profile"] == "standard"
    assert serializer.validated_data["config"]["analysis_duration"] == 300


@pytest.mark.parametrize(
    ("profile", "overrides", "expected"),
    [
        ("comprehensive", {}, {"analysis_duration": 900, "enable_pentesting": True}),
        (
            "comprehensive",
            {"enable_fuzzing": False},
            {"analysis_duration": 900, "enable_fuzzing": False, "enable_pentesting": True},
        ),
        ("custom", {"test_timeout": 600}, {"analysis_duration": 600, "test_timeout": 600}),
        ("minimal", {"analysis_duration": 90}, {"analysis_duration": 90, "test_timeout": 90}),
        ("minimal", {"analysis_duration": 3600}, {"analysis_duration": 3600}),
        (
            "standard",
            {"test_timeout": 3600, "analysis_duration": 3600},
            {"analysis_duration": 3600},
        ),
        (
            "standard",
            {"ports": [1, 65535], "environment": {"_A1": "v"}},
            {"ports": [1, 65535], "environment": {"_A1": "v"}, "analysis_duration": 300},
        ),
        (
            "standard",
            {"health_check_path": "/healthz", "allow_egress": True},
            {"health_check_path": "/healthz", "allow_egress": True},
        ),
    ],
)
def test_partial_config_overrides_the_preset_key_by_key(profile, overrides, expected):
    config = config_of({**VALID, "profile": profile, "config": overrides})
    assert {key: config[key] for key in expected} == expected
    assert set(config) == set(normalize_config("custom", {}))


def test_normalized_config_has_every_key():
    assert set(normalize_config("minimal", {})) == {
        "analysis_duration",
        "test_timeout",
        "enable_fuzzing",
        "enable_profiling",
        "enable_pentesting",
        "enable_code_coverage",
        "health_check_timeout",
        "health_check_path",
        "ports",
        "environment",
        "allow_egress",
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/api/v1/analysis", "/api/v1/analysis/00000000-0000-4000-8000-000000000000/status"]
)
def test_an_unknown_format_is_a_400_naming_it_not_a_404(api, path):
    """DRF answers an unknown ?format= with a 404, as if the resource did not exist."""
    response = api.get(path, {"format": "xml"})

    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert body["details"]["errors"] == [
        {"field": "format", "code": "invalid_choice", "message": "Must be one of: json."}
    ]
