"""The service's exception hierarchy.

Every error a client can see is one of these classes, or a subclass an app
defines on top of them (this service's are in ``analysis/exceptions.py``). They
are DRF ``APIException``s: ``default_code`` (also ``error_code``) and
``status_code`` are the API contract (clients switch on the code); ``details``
carries the machine-readable context listed for each class. Anything else that
is raised is translated into one of them by :mod:`reliability.error_mapping`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from rest_framework.exceptions import APIException

__all__ = [
    "BadRequestError",
    "DatabaseError",
    "ExternalServiceError",
    "ForbiddenError",
    "InternalServiceError",
    "InvalidHostError",
    "LengthRequiredError",
    "MalformedRequestError",
    "MethodNotAllowedError",
    "NotAcceptableError",
    "OperationTimeoutError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "ResourceConflictError",
    "ResourceNotFoundError",
    "ServiceUnavailableError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "VexxyException",
    "utc_timestamp",
]


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, microsecond precision."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class VexxyException(APIException):
    """Base of every error the service reports: a DRF ``APIException`` whose code is the API's.

    ``default_code`` is the machine-readable code clients switch on (``error``
    in the envelope). ``retry_after`` (seconds) becomes a ``Retry-After``
    header; ``headers`` are added to the error response as they are.

    ``expected``: raised, this 5xx is a refusal the service chose knowingly (a
    dependency it knows is off or down), not a fault to investigate; it is
    logged as a WARNING without a traceback. Client errors always are.
    """

    status_code: int = 500
    default_code: str = "INTERNAL_ERROR"
    default_detail: str = "An internal error occurred."
    expected: bool = False

    def __init__(
        self,
        message: str | None = None,
        details: dict[str, Any] | None = None,
        *,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = str(message or self.default_detail)
        self.details: dict[str, Any] = dict(details or {})
        self.retry_after = retry_after
        self.headers: dict[str, str] = dict(headers or {})
        self.timestamp = utc_timestamp()
        super().__init__(self.message, self.default_code)

    @property
    def error_code(self) -> str:
        return self.default_code

    def to_dict(self, request_id: str | None = None) -> dict[str, Any]:
        """The error envelope: always the same five keys."""
        return {
            "error": self.error_code,
            "message": self.message,
            "details": self.details,
            "timestamp": self.timestamp,
            "request_id": request_id,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.error_code}, {self.message!r}, {self.details!r})"


class ValidationError(VexxyException):
    """Field validation failed; ``details.errors`` lists ``{field, code, message}``."""

    status_code = 400
    default_code = "VALIDATION_ERROR"
    default_detail = "The request is invalid."

    def __init__(
        self,
        message: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        details: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        merged = {"errors": list(errors or [])}
        merged.update(details or {})
        super().__init__(message, merged, **kwargs)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.details["errors"]


class UnauthorizedError(VexxyException):
    """401; the response carries ``WWW-Authenticate`` with ``auth_scheme``."""

    status_code = 401
    default_code = "UNAUTHORIZED"
    default_detail = "Authentication credentials were missing or invalid."

    def __init__(self, message: str | None = None, *, auth_scheme: str = "Api-Key", **kwargs: Any):
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("WWW-Authenticate", f'{auth_scheme} realm="api"')
        super().__init__(message, headers=headers, **kwargs)


class ForbiddenError(VexxyException):
    status_code = 403
    default_code = "FORBIDDEN"
    default_detail = "You do not have permission to perform this action."


class ResourceNotFoundError(VexxyException):
    status_code = 404
    default_code = "RESOURCE_NOT_FOUND"
    default_detail = "The resource was not found."

    def __init__(self, resource_type: str, resource_id: Any, message: str | None = None) -> None:
        super().__init__(
            message or f"{resource_type} not found: {resource_id}",
            {"resource_type": resource_type, "resource_id": str(resource_id)},
        )


class ResourceConflictError(VexxyException):
    status_code = 409
    default_code = "RESOURCE_CONFLICT"
    default_detail = "The request conflicts with the current state of the resource."


class InternalServiceError(VexxyException):
    status_code = 500
    default_code = "INTERNAL_ERROR"

    def __init__(self, service: str = "vexxy", message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, {"service": service}, **kwargs)


class DatabaseError(VexxyException):
    """A database failure; 503 when the database could not be reached at all."""

    status_code = 500
    default_code = "DATABASE_ERROR"
    default_detail = "A database error occurred."

    def __init__(
        self,
        operation: str = "query",
        message: str | None = None,
        *,
        unreachable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        if unreachable:
            self.status_code = 503
            message = message or "The database is unavailable."
            retry_after = retry_after if retry_after is not None else 5
        super().__init__(message, {"operation": operation}, retry_after=retry_after)


class ExternalServiceError(VexxyException):
    status_code = 502
    default_code = "EXTERNAL_SERVICE_ERROR"
    default_detail = "An upstream service failed."

    def __init__(self, service: str, message: str | None = None, details: dict | None = None):
        super().__init__(message or f"{service} failed", {"service": service, **(details or {})})


class ServiceUnavailableError(VexxyException):
    status_code = 503
    default_code = "SERVICE_UNAVAILABLE"
    default_detail = "A required service is unavailable."
    # The outage itself is reported by /health and the circuit breaker, once.
    expected = True

    def __init__(
        self,
        service: str,
        reason: str,
        message: str | None = None,
        *,
        retry_after: float | None = 30,
    ) -> None:
        super().__init__(
            message or f"{service} is unavailable: {reason}",
            {"service": service, "reason": reason},
            retry_after=retry_after,
        )


class OperationTimeoutError(VexxyException):
    status_code = 504
    default_code = "TIMEOUT"
    default_detail = "The operation timed out."

    def __init__(self, operation: str, timeout_seconds: float, message: str | None = None):
        super().__init__(
            message or f"{operation} timed out after {timeout_seconds:g}s",
            {"operation": operation, "timeout_seconds": timeout_seconds},
        )


class BadRequestError(VexxyException):
    status_code = 400
    default_code = "BAD_REQUEST"
    default_detail = "The request could not be processed."


class MalformedRequestError(BadRequestError):
    default_code = "MALFORMED_REQUEST"
    default_detail = "The request body could not be parsed."


class InvalidHostError(BadRequestError):
    default_code = "INVALID_HOST"
    default_detail = "The Host header names a host this service does not serve."


class MethodNotAllowedError(VexxyException):
    status_code = 405
    default_code = "METHOD_NOT_ALLOWED"
    default_detail = "This method is not allowed on this resource."

    def __init__(self, method: str, allowed: list[str] | None = None, message: str | None = None):
        headers = {"Allow": ", ".join(allowed)} if allowed else None
        super().__init__(
            message or f"Method {method} is not allowed here.",
            {"method": method, "allowed_methods": allowed or []},
            headers=headers,
        )


class NotAcceptableError(VexxyException):
    status_code = 406
    default_code = "NOT_ACCEPTABLE"
    default_detail = "No representation matches the Accept header."


class LengthRequiredError(VexxyException):
    """411: a body sent without Content-Length (chunked) is refused rather than read as empty."""

    status_code = 411
    default_code = "LENGTH_REQUIRED"
    default_detail = (
        "Send the request body with a Content-Length header; chunked bodies are not accepted."
    )


class PayloadTooLargeError(VexxyException):
    status_code = 413
    default_code = "PAYLOAD_TOO_LARGE"
    default_detail = "The request body is too large."

    def __init__(self, limit_bytes: int | None, message: str | None = None) -> None:
        super().__init__(message, {"limit_bytes": limit_bytes})


class UnsupportedMediaTypeError(VexxyException):
    status_code = 415
    default_code = "UNSUPPORTED_MEDIA_TYPE"
    default_detail = "The request's media type is not supported."

    def __init__(self, media_type: str | None, message: str | None = None) -> None:
        super().__init__(
            message or f"Unsupported media type {media_type!r} in the request.",
            {"media_type": media_type},
        )


class TooManyRequestsError(VexxyException):
    """429: a limit of the caller's was reached; ``retry_after`` says when to come back."""

    status_code = 429
    default_code = "TOO_MANY_REQUESTS"
    default_detail = "Too many requests."


class RateLimitedError(TooManyRequestsError):
    status_code = 429
    default_code = "RATE_LIMITED"
    default_detail = "Too many requests."

    def __init__(self, wait_seconds: float | None, message: str | None = None) -> None:
        wait = None if wait_seconds is None else max(1, math.ceil(wait_seconds))
        super().__init__(
            message or "Request was throttled.",
            {"wait_seconds": wait},
            retry_after=wait,
        )
