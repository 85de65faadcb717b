"""OpenAPI pieces: the error envelope as a schema component, documented on every operation."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.pagination import BasePagination

ErrorEnvelope = inline_serializer(
    name="ErrorEnvelope",
    fields={
        "error": serializers.CharField(help_text="Machine-readable code, e.g. RESOURCE_NOT_FOUND."),
        "message": serializers.CharField(help_text="Human-readable explanation."),
        "details": serializers.DictField(help_text="Code-specific context; see the README."),
        "timestamp": serializers.DateTimeField(help_text="UTC, ISO 8601 with Z."),
        "request_id": serializers.CharField(help_text="Equals the X-Request-ID header."),
    },
)

_DESCRIPTIONS = {
    400: "VALIDATION_ERROR (details.errors names each field), MALFORMED_REQUEST, INVALID_HOST",
    401: "UNAUTHORIZED: missing, invalid, revoked or expired API key",
    404: "RESOURCE_NOT_FOUND: unknown, or owned by another organization",
    405: "METHOD_NOT_ALLOWED, with Allow",
    406: "NOT_ACCEPTABLE: the Accept header names no type this operation answers with",
    409: "INVALID_JOB_STATE: the job's status does not allow this",
    411: "LENGTH_REQUIRED: a body without Content-Length (chunked) is not read",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "QUOTA_EXCEEDED or RATE_LIMITED, with Retry-After",
    500: "INTERNAL_ERROR or DATABASE_ERROR; the log holds the detail under the request ID",
    503: "SERVICE_UNAVAILABLE (names the missing dependency) or DATABASE_ERROR, with Retry-After",
}

# What any operation can answer, whatever it does: refusals before the view and failures.
COMMON = (401, 405, 406, 411, 413, 415, 429, 500, 503)


def errors(*statuses: int) -> dict[tuple[int, str], OpenApiResponse]:
    """Envelope responses for ``statuses`` plus those every operation can return.

    Always ``application/json``, whatever other media types the operation's success has.
    """
    return {
        (status, "application/json"): OpenApiResponse(
            ErrorEnvelope, description=_DESCRIPTIONS[status]
        )
        for status in sorted({*statuses, *COMMON})
    }


def pagination_parameters(paginator: type[BasePagination]) -> list[OpenApiParameter]:
    """The paginator's query parameters, for a view that paginates by hand."""
    return [
        OpenApiParameter(
            parameter["name"],
            type=parameter["schema"],
            location=OpenApiParameter.QUERY,
            description=parameter["description"],
        )
        for parameter in paginator().get_schema_operation_parameters(None)
    ]


def strict_request_bodies(result: dict, **kwargs: object) -> dict:
    """``additionalProperties: false`` on every request body: their serializers refuse unknown
    keys (``StrictSerializer``), so that a misspelt field is an error, never silently dropped."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object":
            component["additionalProperties"] = False
    return result


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "analysis.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`; the `X-API-Key: <key>` header works too.",
        }
