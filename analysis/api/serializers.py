"""Request validation and response shapes of the analysis API."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from analysis.api.representation import Representation, compile_representation
from analysis.budget import MAX_ANALYSIS_SECONDS, MIN_ANALYSIS_SECONDS, estimated_duration_minutes
from analysis.image_reference import (
    MAX_REFERENCE_LENGTH,
    REFERENCE_PATTERN,
    SHA256_DIGEST,
    SHA256_DIGEST_PATTERN,
    InvalidReference,
    parse_image_reference,
)
from analysis.imports import document_bounds
from analysis.kubescape.readers import SEVERITIES
from analysis.models import AnalysisEvidence, AnalysisJob
from analysis.profiles import DEFAULT_PROFILE, normalize_config, redacted
from analysis.vex.builder import VEX_STATUSES
from reliability.documents import Bounds, DocumentRefused, load_json_or_yaml
from reliability.parsers import refusal_error

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_PORTS = 32
MAX_ENV_VARS = 64
MAX_ENV_NAME = 128
MAX_ENV_VALUE = 4096


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "integer", "minimum": 1, "maximum": 65535},
        "maxItems": MAX_PORTS,
        "uniqueItems": True,
    }
)
class PortsField(serializers.ListField):
    """Container ports, each once."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            child=serializers.IntegerField(min_value=1, max_value=65535),
            max_length=MAX_PORTS,
            **kwargs,
        )

    def to_internal_value(self, data: Any) -> list[int]:
        if isinstance(data, list) and len(data) > MAX_PORTS:  # before validating every item
            self.fail("max_length", max_length=MAX_PORTS)
        ports = super().to_internal_value(data)
        repeated = sorted(port for port, seen in Counter(ports).items() if seen > 1)
        if repeated:
            raise serializers.ValidationError(
                f"Ports must be unique; repeated: {', '.join(map(str, repeated))}.", code="unique"
            )
        return ports


@extend_schema_field(
    {
        "type": "object",
        "maxProperties": MAX_ENV_VARS,
        "propertyNames": {"pattern": f"^{ENV_NAME.pattern}$", "maxLength": MAX_ENV_NAME},
        "additionalProperties": {"type": "string", "maxLength": MAX_ENV_VALUE},
    }
)
class EnvironmentField(serializers.DictField):
    """Environment variables of the sandbox container; values may be secrets."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            child=serializers.CharField(
                allow_blank=True, max_length=MAX_ENV_VALUE, trim_whitespace=False
            ),
            **kwargs,
        )

    def to_internal_value(self, data: Any) -> dict[str, str]:
        if isinstance(data, dict) and len(data) > MAX_ENV_VARS:  # before validating every value
            raise serializers.ValidationError(
                f"At most {MAX_ENV_VARS} variables.", code="max_length"
            )
        value = super().to_internal_value(data)
        bad = sorted(
            name for name in value if not ENV_NAME.fullmatch(name) or len(name) > MAX_ENV_NAME
        )
        if bad:
            # Names only: values may be secrets and never appear in errors or logs.
            raise serializers.ValidationError(
                f"Invalid variable names (use [A-Za-z_][A-Za-z0-9_]*, at most {MAX_ENV_NAME} "
                f"characters): {', '.join(name[:MAX_ENV_NAME] for name in bad)}.",
                code="invalid_name",
            )
        return value


class StrictSerializer(serializers.Serializer):
    """Rejects keys it does not know: a field the client thinks was applied must not vanish."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {
                        key: [serializers.ErrorDetail("Unknown field.", code="unknown_field")]
                        for key in unknown
                    }
                )
        return super().to_internal_value(data)


# test_timeout, the old name of analysis_duration, is accepted but not offered: a schema cannot
# say that two keys must be equal.
@extend_schema_serializer(exclude_fields=["test_timeout"])
class AnalysisConfigSerializer(StrictSerializer):
    """Every key optional: what is given overrides the profile's preset."""

    analysis_duration = serializers.IntegerField(
        required=False, min_value=MIN_ANALYSIS_SECONDS, max_value=MAX_ANALYSIS_SECONDS
    )
    test_timeout = serializers.IntegerField(
        required=False, min_value=MIN_ANALYSIS_SECONDS, max_value=MAX_ANALYSIS_SECONDS
    )
    enable_fuzzing = serializers.BooleanField(required=False)
    enable_profiling = serializers.BooleanField(required=False)
    enable_pentesting = serializers.BooleanField(required=False)
    enable_code_coverage = serializers.BooleanField(required=False)
    health_check_timeout = serializers.IntegerField(required=False, min_value=5, max_value=600)
    health_check_path = serializers.RegexField(
        r"^/",
        required=False,
        allow_null=True,
        max_length=1024,
        trim_whitespace=False,
        error_messages={"invalid": "Must start with '/'."},
    )
    ports = PortsField(required=False)
    environment = EnvironmentField(required=False)
    allow_egress = serializers.BooleanField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        duration, timeout = attrs.get("analysis_duration"), attrs.get("test_timeout")
        if duration is not None and timeout is not None and duration != timeout:
            raise serializers.ValidationError(
                {
                    "test_timeout": serializers.ErrorDetail(
                        "test_timeout is the old name of analysis_duration: give one, "
                        "or equal values.",
                        code="mismatch",
                    )
                }
            )
        return attrs


@extend_schema_field(
    {"type": "string", "pattern": REFERENCE_PATTERN, "maxLength": MAX_REFERENCE_LENGTH}
)
class ImageReferenceField(serializers.CharField):
    """An image reference, e.g. ``nginx:1.27`` or ``ghcr.io/acme/app@sha256:…``."""


@extend_schema_field({"type": "string", "pattern": SHA256_DIGEST_PATTERN})
class DigestField(serializers.CharField):
    """A manifest digest: ``sha256:`` and 64 lowercase hexadecimal characters."""


class ImageSerializer(StrictSerializer):
    image_ref = ImageReferenceField(max_length=MAX_REFERENCE_LENGTH)
    image_digest = DigestField(max_length=71)

    def validate_image_ref(self, value: str) -> str:
        try:
            parse_image_reference(value)
        except InvalidReference as error:
            raise serializers.ValidationError(str(error), code="invalid_reference") from None
        return value

    def validate_image_digest(self, value: str) -> str:
        if not SHA256_DIGEST.fullmatch(value):
            raise serializers.ValidationError(
                "Must be 'sha256:' followed by 64 lowercase hexadecimal characters.",
                code="invalid_digest",
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        pinned = parse_image_reference(attrs["image_ref"]).digest
        if pinned and pinned != attrs["image_digest"]:
            raise serializers.ValidationError(
                {
                    "image_ref": serializers.ErrorDetail(
                        "The reference's digest differs from image_digest.", code="digest_mismatch"
                    )
                }
            )
        return attrs


class SubmitSerializer(ImageSerializer):
    profile = serializers.ChoiceField(choices=AnalysisJob.Profile.choices, default=DEFAULT_PROFILE)
    config = AnalysisConfigSerializer(required=False)
    sbom_id = serializers.CharField(
        max_length=200, required=False, allow_blank=True, allow_null=True
    )
    priority = serializers.IntegerField(required=False, min_value=0, max_value=10, default=5)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        attrs["config"] = normalize_config(attrs["profile"], attrs.get("config") or {})
        attrs["sbom_id"] = attrs.get("sbom_id") or ""
        return attrs


@extend_schema_field(OpenApiTypes.OBJECT)
class KubescapeDocumentField(serializers.Field):
    """A Kubescape object: JSON in a JSON body, or an uploaded JSON/YAML file in multipart.

    Text is read within ``bounds`` (by default what an import may hold), JSON values only.
    """

    default_error_messages = {
        "invalid": "Expected a JSON object or an uploaded JSON/YAML file.",
        "not_object": "Expected a JSON object at the top level.",
    }

    def __init__(self, *, bounds: Bounds | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bounds = bounds

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict):
            return data
        if isinstance(data, UploadedFile):
            data = data.read()
        if not isinstance(data, str | bytes):
            self.fail("invalid")
        try:
            parsed = load_json_or_yaml(data, self.bounds or document_bounds())
        except DocumentRefused as refused:
            raise refusal_error(refused, self.field_name, "The document") from None
        if not isinstance(parsed, dict):
            self.fail("not_object")
        return parsed

    def to_representation(self, value: Any) -> Any:
        return value


class ImportSerializer(ImageSerializer):
    full_manifest = KubescapeDocumentField(
        help_text="The image's VulnerabilityManifest (context non-filtered)."
    )
    relevant_manifest = KubescapeDocumentField(
        help_text="The container's relevant VulnerabilityManifest (context filtered)."
    )
    kubescape_vex = KubescapeDocumentField(required=False)
    filtered_sbom = KubescapeDocumentField(required=False)
    completion = serializers.ChoiceField(
        choices=["complete", "partial"],
        default="complete",
        help_text="The runtime profile's kubescape.io/completion; partial lowers confidence.",
    )


JOB_AND_IMAGE = ("job_id", "status", "image_ref", "image_digest", "image_digests")


# A job seen through the API: its primary key is ``job_id``. (A comment, not a docstring:
# drf-spectacular would put a docstring into every job schema's description.)
class JobFieldsSerializer(serializers.ModelSerializer):
    job_id = serializers.UUIDField(source="id")

    class Meta:
        model = AnalysisJob

    @classmethod
    def represent(cls, job: AnalysisJob) -> dict[str, Any]:
        """``cls(job).data``, without building the serializer and its fields again."""
        return _representation(cls, rows=False)(job)

    @classmethod
    def represent_row(cls, row: dict[str, Any]) -> dict[str, Any]:
        """The same for a row of ``values(*cls.columns())``: no model instance is built."""
        return _representation(cls, rows=True)(row)

    @classmethod
    def represent_rows(cls, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """``represent_row`` of each row, for a page."""
        return _representation(cls, rows=True).many(rows)

    @classmethod
    def columns(cls) -> list[str]:
        """The model fields this serializer reads: what a query for it must load."""
        return _columns(cls)


@functools.cache
def _columns(serializer_class: type[JobFieldsSerializer]) -> list[str]:
    return [field.source for field in serializer_class().fields.values() if field.source != "*"]


@functools.cache
def _representation(serializer_class: type[JobFieldsSerializer], *, rows: bool) -> Representation:
    # A ModelSerializer works its fields out from the model on every instance: once per
    # class here. The representation only reads them, so threads can share it.
    return compile_representation(serializer_class(), rows=rows)


class ImportResponseSerializer(JobFieldsSerializer):
    class Meta(JobFieldsSerializer.Meta):
        fields = [
            "job_id",
            "status",
            "origin",
            "image_ref",
            "image_digest",
            "summary",
            "generated_vex_id",
            "created_at",
            "completed_at",
        ]


@extend_schema_field(OpenApiTypes.OBJECT)
class RedactedConfigField(serializers.Field):
    """The normalized config; environment values are write-only (they may be secrets)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value: Any) -> dict[str, Any]:
        return redacted(value)


class SubmitResponseSerializer(JobFieldsSerializer):
    config = RedactedConfigField()
    estimated_duration_minutes = serializers.SerializerMethodField()

    class Meta(JobFieldsSerializer.Meta):
        fields = [
            "job_id",
            "status",
            "image_ref",
            "image_digest",
            "profile",
            "config",
            "estimated_duration_minutes",
            "created_at",
        ]

    def get_estimated_duration_minutes(self, job: AnalysisJob) -> int:
        return estimated_duration_minutes(job.config["analysis_duration"])


class JobStatusSerializer(JobFieldsSerializer):
    class Meta(JobFieldsSerializer.Meta):
        fields = [
            "job_id",
            "status",
            "progress_percent",
            "current_phase",
            "attempts",
            "created_at",
            "started_at",
            "completed_at",
            "cancelled_at",
            "error_code",
            "error_message",
        ]


class JobSerializer(JobFieldsSerializer):
    config = RedactedConfigField()

    class Meta(JobFieldsSerializer.Meta):
        fields = [
            *JOB_AND_IMAGE,
            "sbom_id",
            "profile",
            "config",
            "priority",
            "progress_percent",
            "current_phase",
            "request_id",
            "attempts",
            "created_at",
            "started_at",
            "completed_at",
            "cancelled_at",
            "cancelled_by",
            "error_code",
            "error_message",
            "error_details",
            "generated_vex_id",
        ]


class ReachabilityResultSerializer(serializers.Serializer):
    """One verdict; the schema of ``reachability_results`` items (the rows keep it as JSON)."""

    cve_id = serializers.CharField()
    status = serializers.ChoiceField(choices=VEX_STATUSES)
    justification = serializers.CharField(allow_null=True)
    confidence_score = serializers.FloatField()
    reason = serializers.CharField()
    action = serializers.CharField(allow_null=True)
    package = serializers.CharField()
    package_name = serializers.CharField()
    package_version = serializers.CharField(allow_blank=True)
    purl = serializers.CharField(allow_blank=True)
    severity = serializers.ChoiceField(choices=SEVERITIES)
    fix_state = serializers.CharField(allow_blank=True)
    fix_versions = serializers.ListField(child=serializers.CharField())
    aliases = serializers.ListField(child=serializers.CharField())


class JobResultsSerializer(JobFieldsSerializer):
    next = serializers.URLField(
        read_only=True, allow_null=True, help_text="The next page of results, if any."
    )
    previous = serializers.URLField(read_only=True, allow_null=True)
    reachability_results = ReachabilityResultSerializer(
        many=True, read_only=True, help_text="This page of results, in the VEX's order."
    )

    class Meta(JobFieldsSerializer.Meta):
        fields = [
            *JOB_AND_IMAGE,
            "summary",
            "execution_profile",
            "generated_vex_id",
            "created_at",
            "started_at",
            "completed_at",
            "next",
            "previous",
            "reachability_results",
        ]


class EvidenceSerializer(serializers.ModelSerializer):
    type = serializers.CharField(source="evidence_type")

    class Meta:
        model = AnalysisEvidence
        fields = ["id", "type", "description", "size_bytes", "sha256", "created_at"]
