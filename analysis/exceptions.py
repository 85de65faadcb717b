"""The analysis app's errors, on the generic bases of ``reliability.exceptions``.

Their codes are part of the API contract (the README's table of error codes).
"""

from __future__ import annotations

from typing import Any

from reliability.exceptions import (
    BadRequestError,
    ExternalServiceError,
    InternalServiceError,
    OperationTimeoutError,
    ResourceConflictError,
    ResourceNotFoundError,
    TooManyRequestsError,
    VexxyException,
)


class InvalidImageError(BadRequestError):
    status_code = 400
    default_code = "INVALID_IMAGE"
    default_detail = "The image cannot be used."

    def __init__(self, image_ref: str, reason: str, message: str | None = None) -> None:
        super().__init__(
            message or f"Invalid image {image_ref}: {reason}",
            {"image_ref": image_ref, "reason": reason},
        )


class InvalidConfigurationError(BadRequestError):
    status_code = 400
    default_code = "INVALID_CONFIGURATION"
    default_detail = "The configuration is invalid."

    def __init__(self, config_key: str, message: str | None = None) -> None:
        super().__init__(
            message or f"Invalid configuration: {config_key}", {"config_key": config_key}
        )


class JobNotFoundError(ResourceNotFoundError):
    def __init__(self, job_id: Any, message: str | None = None) -> None:
        super().__init__("Analysis Job", job_id, message)


class InvalidJobStateError(ResourceConflictError):
    status_code = 409
    default_code = "INVALID_JOB_STATE"
    default_detail = "The job is not in a state that allows this operation."

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


class QuotaExceededError(TooManyRequestsError):
    status_code = 429
    default_code = "QUOTA_EXCEEDED"
    default_detail = "Quota exceeded."

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


class WorkerLostError(InternalServiceError):
    """The worker running a job died (killed, out of memory, time limit) too many times."""

    default_code = "WORKER_LOST"
    default_detail = "The worker running this job was lost."

    def __init__(self, attempts: int, message: str | None = None) -> None:
        VexxyException.__init__(self, message, {"attempts": attempts})


class KubernetesError(ExternalServiceError):
    default_code = "KUBERNETES_ERROR"

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
    default_code = "KUBESCAPE_ERROR"

    def __init__(self, message: str | None = None, details: dict | None = None) -> None:
        VexxyException.__init__(self, message or "Kubescape failed", details)


class SandboxError(ExternalServiceError):
    default_code = "SANDBOX_ERROR"

    def __init__(self, sandbox_id: str, reason: str, message: str | None = None, **details: Any):
        VexxyException.__init__(
            self,
            message or f"Sandbox {sandbox_id} failed: {reason}",
            {"sandbox_id": sandbox_id, "reason": reason, **details},
        )


class AnalysisTimeoutError(OperationTimeoutError):
    default_code = "ANALYSIS_TIMEOUT"

    def __init__(
        self, job_id: Any, phase: str, timeout_seconds: float, message: str | None = None
    ) -> None:
        VexxyException.__init__(
            self,
            message or f"Analysis {job_id} timed out in {phase} after {timeout_seconds:g}s",
            {"job_id": str(job_id), "phase": phase, "timeout_seconds": timeout_seconds},
        )


# Codes for failures that Django and DRF detect before our code runs.
