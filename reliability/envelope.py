"""The one JSON error envelope: rendering and logging of every error response.

:func:`error_response` is the single entry point. The DRF exception handler,
the error middleware and the fallback for bare Django error responses all end
here, so every path answers with the same body, headers and log line.
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any

from django.http import HttpRequest, JsonResponse

from .correlation import get_request_id
from .error_mapping import to_vexxy_exception
from .exceptions import VexxyException
from .metrics.definitions import count_error

logger = logging.getLogger("reliability.errors")

PROBLEM_JSON = "application/problem+json"
# Every 429 and 503 tells the client when to come back, even if the error did not say.
DEFAULT_RETRY_AFTER = {429: 1, 503: 30}
ENVELOPE_MARK = "vexxy_envelope"


def error_response(request: HttpRequest, exc: BaseException) -> JsonResponse:
    """Log ``exc`` at the right level and answer with its envelope."""
    error = to_vexxy_exception(exc, request)
    log_error(request, error, exc)
    return render_error(request, error)


def render_error(
    request: HttpRequest, error: VexxyException, extra: dict[str, Any] | None = None
) -> JsonResponse:
    """The envelope of ``error``; ``extra`` members go first and yield to the envelope's."""
    count_error(error.error_code, error.status_code)
    request_id = get_request_id() or getattr(request, "request_id", None)
    body = {**(extra or {}), **error.to_dict(request_id)}
    wants_problem = _accepts_problem_json(request)
    if wants_problem:
        body.update(_problem_members(request, error))
    response = JsonResponse(
        body,
        status=error.status_code,
        content_type=PROBLEM_JSON if wants_problem else "application/json",
        json_dumps_params={"default": str},
    )
    for name, value in error.headers.items():
        response[name] = value
    retry_after = error.retry_after
    if retry_after is None:
        retry_after = DEFAULT_RETRY_AFTER.get(error.status_code)
    if retry_after is not None:
        response["Retry-After"] = str(max(0, math.ceil(retry_after)))
    setattr(response, ENVELOPE_MARK, True)
    # Django logs every >=400 response again unless told it already was.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def log_error(request: HttpRequest, error: VexxyException, original: BaseException) -> None:
    """An ERROR with the traceback for what needs a human; a one-line WARNING otherwise."""
    extra: dict[str, Any] = {
        "error_code": error.error_code,
        "status": error.status_code,
        "method": request.method,
        "path": request.path,
    }
    if needs_a_human(error, original):
        logger.error(
            "%s %s failed with %s",
            request.method,
            request.path,
            error.error_code,
            exc_info=(type(original), original, original.__traceback__),
            extra=extra,
        )
    else:
        logger.warning(
            "%s %s rejected with %s: %s",
            request.method,
            request.path,
            error.error_code,
            error.message,
            extra=extra,
        )


def needs_a_human(error: VexxyException, original: BaseException) -> bool:
    """A server error, unless raised on purpose as an ``expected`` refusal."""
    if error.status_code < 500:
        return False
    return not (original is error and error.expected)


def is_envelope(response: Any) -> bool:
    return getattr(response, ENVELOPE_MARK, False)


def _accepts_problem_json(request: HttpRequest) -> bool:
    return PROBLEM_JSON in request.headers.get("Accept", "")


def _problem_members(request: HttpRequest, error: VexxyException) -> dict[str, Any]:
    """RFC 9457 members; ``type`` is a stable URN per error code."""
    try:
        title = HTTPStatus(error.status_code).phrase
    except ValueError:
        title = "Error"
    return {
        "type": f"urn:vexxy:error:{error.error_code.lower().replace('_', '-')}",
        "title": title,
        "status": error.status_code,
        "detail": error.message,
        "instance": request.path,
    }
