"""The service's exception hierarchy.

Every error a client can see is one of these classes. ``error_code`` and
``status_code`` are the API contract (clients switch on the code); ``details``
carries the machine-readable context listed for each class. Anything else that
is raised is translated into one of them by :mod:`reliability.error_mapping`.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "AnalysisTimeoutError",
    "BadRequestError",
    "DatabaseError",
    "ExternalServiceError",
    "ForbiddenError",
    "InternalServiceError",
    "InvalidConfigurationError",
    "InvalidHostError",
    "InvalidImageError",
    "InvalidJobStateError",
    "JobNotFoundError",
    "KubernetesError",
    "KubescapeError",
    "MalformedRequestError",
    "MethodNotAllowedError",
    "NotAcceptableError",
    "PayloadTooLargeError",
    "QuotaExceededError",
    "RateLimitedError",
    "ResourceConflictError",
    "ResourceNotFoundError",
    "SandboxError",
    "ServiceUnavailableError",
    "TimeoutError",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "VexxyException",
    "WorkerLostError",
    "utc_timestamp",
]


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, microsecond precision."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class VexxyException(Exception):
    """Base of every error the service reports.

    ``retry_after`` (seconds) becomes a ``Retry-After`` header; ``headers`` are
    added to the error response as they are.
    """

    status_code: int = 500
    error_code: str = "INTERNAL_ERROR"
    default_message: str = "An internal error occurred."

    def __init__(
        self,
        message: str | None = None,
        details: dict[str, Any] | None = None,
        *,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details: dict[str, Any] = dict(details or {})
        self.retry_after = retry_after
        self.headers: dict[str, str] = dict(headers or {})
        self.timestamp = utc_timestamp()
        super().__init__(self.message)

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
    error_code = "VALIDATION_ERROR"
    default_message = "The request is invalid."

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


class InvalidImageError(VexxyException):
    status_code = 400
    error_code = "INVALID_IMAGE"
    default_message = "The image cannot be used."

    def __init__(self, image_ref: str, reason: str, message: str | None = None) -> None:
        super().__init__(
            message or f"Invalid image {image_ref}: {reason}",
            {"image_ref": image_ref, "reason": reason},
        )


class InvalidConfigurationError(VexxyException):
    status_code = 400
    error_code = "INVALID_CONFIGURATION"
    default_message = "The configuration is invalid."

    def __init__(self, config_key: str, message: str | None = None) -> None:
        super().__init__(
            message or f"Invalid configuration: {config_key}", {"config_key": config_key}
        )


class UnauthorizedError(VexxyException):
    """401; the response carries ``WWW-Authenticate`` with ``auth_scheme``."""

    status_code = 401
    error_code = "UNAUTHORIZED"
    default_message = "Authentication credentials were missing or invalid."

    def __init__(self, message: str | None = None, *, auth_scheme: str = "Api-Key", **kwargs: Any):
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("WWW-Authenticate", f'{auth_scheme} realm="api"')
        super().__init__(message, headers=headers, **kwargs)


class ForbiddenError(VexxyException):
    status_code = 403
    error_code = "FORBIDDEN"
    default_message = "You do not have permission to perform this action."


class ResourceNotFoundError(VexxyException):
    status_code = 404
    error_code = "RESOURCE_NOT_FOUND"
    default_message = "The resource was not found."

    def __init__(self, resource_type: str, resource_id: Any, message: str | None = None) -> None:
        super().__init__(
            message or f"{resource_type} not found: {resource_id}",
            {"resource_type": resource_type, "resource_id": str(resource_id)},
        )


class JobNotFoundError(ResourceNotFoundError):
    def __init__(self, job_id: Any, message: str | None = None) -> None:
        super().__init__("Analysis Job", job_id, message)


class ResourceConflictError(VexxyException):
    status_code = 409
    error_code = "RESOURCE_CONFLICT"
    default_message = "The request conflicts with the current state of the resource."


class InvalidJobStateError(VexxyException):
    status_code = 409
    error_code = "INVALID_JOB_STATE"
    default_message = "The job is not in a state that allows this operation."

    def __init__(
        self,
        job_id: Any,
        current_state: str,
        required_state: str | list[str],
        message: str | None = None,
    ) -> None:
        required = (
            required_state if isinstance(required_state, str) else " or ".join(required_state)
        )
        super().__init__(
            message or f"Job {job_id} is {current_state}; this requires {required}",
            {
                "job_id": str(job_id),
                "current_state": current_state,
                "required_state": required_state,
            },
        )


class QuotaExceededError(VexxyException):
    status_code = 429
    error_code = "QUOTA_EXCEEDED"
    default_message = "Quota exceeded."

    def __init__(
        self,
        quota_type: str,
        limit: int,
        current: int,
        *,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(
            message or f"{quota_type} quota exceeded: {current} of {limit} used",
            {"quota_type": quota_type, "limit": limit, "current": current},
            retry_after=retry_after,
        )


class InternalServiceError(VexxyException):
    status_code = 500
    error_code = "INTERNAL_ERROR"

    def __init__(self, service: str = "vexxy", message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, {"service": service}, **kwargs)


class WorkerLostError(InternalServiceError):
    """The worker running a job died (killed, out of memory, time limit) too many times."""

    error_code = "WORKER_LOST"
    default_message = "The worker running this job was lost."

    def __init__(self, attempts: int, message: str | None = None) -> None:
        VexxyException.__init__(self, message, {"attempts": attempts})


class DatabaseError(VexxyException):
    """A database failure; 503 when the database could not be reached at all."""

    status_code = 500
    error_code = "DATABASE_ERROR"
    default_message = "A database error occurred."

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
    error_code = "EXTERNAL_SERVICE_ERROR"
    default_message = "An upstream service failed."

    def __init__(self, service: str, message: str | None = None, details: dict | None = None):
        super().__init__(message or f"{service} failed", {"service": service, **(details or {})})


class KubernetesError(ExternalServiceError):
    error_code = "KUBERNETES_ERROR"

    def __init__(
        self,
        operation: str,
        message: str | None = None,
        *,
        status_code: int | None = None,
        resource: str | None = None,
    ) -> None:
        VexxyException.__init__(
            self,
            message or f"Kubernetes {operation} failed",
            {"operation": operation, "status_code": status_code, "resource": resource},
        )
        self.upstream_status = status_code


class KubescapeError(ExternalServiceError):
    error_code = "KUBESCAPE_ERROR"

    def __init__(self, message: str | None = None, details: dict | None = None) -> None:
        VexxyException.__init__(self, message or "Kubescape failed", details)


class SandboxError(ExternalServiceError):
    error_code = "SANDBOX_ERROR"

    def __init__(self, sandbox_id: str, reason: str, message: str | None = None, **details: Any):
        VexxyException.__init__(
            self,
            message or f"Sandbox {sandbox_id} failed: {reason}",
            {"sandbox_id": sandbox_id, "reason": reason, **details},
        )


class ServiceUnavailableError(VexxyException):
    status_code = 503
    error_code = "SERVICE_UNAVAILABLE"
    default_message = "A required service is unavailable."

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


class TimeoutError(VexxyException):
    status_code = 504
    error_code = "TIMEOUT"
    default_message = "The operation timed out."

    def __init__(self, operation: str, timeout_seconds: float, message: str | None = None):
        super().__init__(
            message or f"{operation} timed out after {timeout_seconds:g}s",
            {"operation": operation, "timeout_seconds": timeout_seconds},
        )


# Inside this module ``TimeoutError`` is ours; keep the builtin reachable by name.
BuiltinTimeoutError = builtins.TimeoutError


class AnalysisTimeoutError(TimeoutError):
    error_code = "ANALYSIS_TIMEOUT"

    def __init__(
        self, job_id: Any, phase: str, timeout_seconds: float, message: str | None = None
    ) -> None:
        VexxyException.__init__(
            self,
            message or f"Analysis {job_id} timed out in {phase} after {timeout_seconds:g}s",
            {"job_id": str(job_id), "phase": phase, "timeout_seconds": timeout_seconds},
        )


# Codes for failures that Django and DRF detect before our code runs.


class BadRequestError(VexxyException):
    status_code = 400
    error_code = "BAD_REQUEST"
    default_message = "The request could not be processed."


class MalformedRequestError(BadRequestError):
    error_code = "MALFORMED_REQUEST"
    default_message = "The request body could not be parsed."


class InvalidHostError(BadRequestError):
    error_code = "INVALID_HOST"
    default_message = "The Host header names a host this service does not serve."


class MethodNotAllowedError(VexxyException):
    status_code = 405
    error_code = "METHOD_NOT_ALLOWED"
    default_message = "This method is not allowed on this resource."

    def __init__(self, method: str, allowed: list[str] | None = None, message: str | None = None):
        headers = {"Allow": ", ".join(allowed)} if allowed else None
        super().__init__(
            message or f"Method {method} is not allowed here.",
            {"method": method, "allowed_methods": allowed or []},
            headers=headers,
        )


class NotAcceptableError(VexxyException):
    status_code = 406
    error_code = "NOT_ACCEPTABLE"
    default_message = "No representation matches the Accept header."


class PayloadTooLargeError(VexxyException):
    status_code = 413
    error_code = "PAYLOAD_TOO_LARGE"
    default_message = "The request body is too large."

    def __init__(self, limit_bytes: int | None, message: str | None = None) -> None:
        super().__init__(message, {"limit_bytes": limit_bytes})


class UnsupportedMediaTypeError(VexxyException):
    status_code = 415
    error_code = "UNSUPPORTED_MEDIA_TYPE"
    default_message = "The request's media type is not supported."

    def __init__(self, media_type: str | None, message: str | None = None) -> None:
        super().__init__(
            message or f"Unsupported media type {media_type!r} in the request.",
            {"media_type": media_type},
        )


class RateLimitedError(VexxyException):
    status_code = 429
    error_code = "RATE_LIMITED"
    default_message = "Too many requests."

    def __init__(self, wait_seconds: float | None, message: str | None = None) -> None:
        wait = None if wait_seconds is None else max(1, round(wait_seconds))
        super().__init__(
            message or "Request was throttled.",
            {"wait_seconds": wait},
            retry_after=wait,
        )
