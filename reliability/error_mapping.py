"""Every exception the service can meet, translated to one of ours.

This is the only place that knows how a DRF, Django or database failure is
presented to a client. Translation never copies driver or exception text into
a 5xx message: those go to the log, not to the caller.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core import exceptions as django_exceptions
from django.db import DatabaseError as DjangoDatabaseError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest
from django.http.request import RawPostDataException
from rest_framework import exceptions as drf
from rest_framework.settings import api_settings

from . import exceptions as ours
from .limits import body_limit


def to_vexxy_exception(
    exc: BaseException, request: HttpRequest | None = None
) -> ours.VexxyException:
    if isinstance(exc, ours.VexxyException):
        return exc
    if isinstance(exc, drf.APIException):
        return _from_drf(exc, request)
    return _from_django(exc, request)


def _from_drf(exc: drf.APIException, request: HttpRequest | None) -> ours.VexxyException:
    """DRF's own exceptions whose code or details differ from ours; the rest go by status."""
    if isinstance(exc, drf.ValidationError):
        return ours.ValidationError(errors=flatten_errors(exc.detail))
    if isinstance(exc, drf.ParseError):
        # DRF's text quotes the parser ("Multipart form parse error - Invalid boundary…").
        return ours.MalformedRequestError(
            f"The request body could not be read as {_content_type(request) or 'declared'}."
        )
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        auth_header = getattr(exc, "auth_header", None)
        if exc.status_code == 403 or not auth_header:
            # DRF downgrades to 403 when no authenticator offers a challenge.
            return ours.ForbiddenError(str(exc.detail))
        return ours.UnauthorizedError(str(exc.detail), headers={"WWW-Authenticate": auth_header})
    if isinstance(exc, drf.NotFound):
        return ours.ResourceNotFoundError("resource", _path(request), message=str(exc.detail))
    if isinstance(exc, drf.MethodNotAllowed):
        return ours.MethodNotAllowedError(_method(request), message=str(exc.detail))
    if isinstance(exc, drf.UnsupportedMediaType):
        return ours.UnsupportedMediaTypeError(_content_type(request), message=str(exc.detail))
    if isinstance(exc, drf.Throttled):
        return ours.RateLimitedError(exc.wait)
    return from_status(exc.status_code, request, message=str(exc.detail))


def _from_django(exc: BaseException, request: HttpRequest | None) -> ours.VexxyException:
    if isinstance(exc, Http404):
        return ours.ResourceNotFoundError("resource", _path(request))
    if isinstance(exc, django_exceptions.PermissionDenied):
        return ours.ForbiddenError()
    if isinstance(exc, django_exceptions.RequestDataTooBig):
        return ours.PayloadTooLargeError(_body_limit(request))
    if isinstance(exc, django_exceptions.DisallowedHost):
        return ours.InvalidHostError()
    if isinstance(exc, django_exceptions.SuspiciousOperation | django_exceptions.BadRequest):
        return ours.BadRequestError()
    if isinstance(exc, json.JSONDecodeError | RawPostDataException):
        return ours.MalformedRequestError()
    if isinstance(exc, OperationalError | InterfaceError):
        return ours.DatabaseError(_db_operation(request), unreachable=True)
    if isinstance(exc, DjangoDatabaseError):
        return ours.DatabaseError(_db_operation(request))
    return ours.InternalServiceError()


_BY_STATUS: dict[int, type[ours.VexxyException]] = {
    400: ours.BadRequestError,
    403: ours.ForbiddenError,
    406: ours.NotAcceptableError,
    409: ours.ResourceConflictError,
    502: ours.VexxyException,
    504: ours.VexxyException,
}


def from_status(
    status: int, request: HttpRequest | None = None, *, message: str | None = None
) -> ours.VexxyException:
    """The envelope for a bare error status produced outside our code."""
    if status == 401:
        return ours.UnauthorizedError(message)
    if status == 404:
        return ours.ResourceNotFoundError(
            "endpoint", _path(request), message=f"No endpoint at {_path(request)}"
        )
    if status == 405:
        return ours.MethodNotAllowedError(_method(request))
    if status == 413:
        return ours.PayloadTooLargeError(_body_limit(request))
    if status == 415:
        return ours.UnsupportedMediaTypeError(_content_type(request))
    if status == 429:
        return ours.RateLimitedError(None)
    if status == 503:
        return ours.ServiceUnavailableError("vexxy", "unavailable")
    if status >= 500:
        # Upstream text is never trusted with a 5xx: keep the status, drop the words.
        error = _BY_STATUS.get(status, ours.InternalServiceError)()
        error.status_code = status
        return error
    error = _BY_STATUS.get(status, ours.BadRequestError)(message)
    error.status_code = status
    return error


def flatten_errors(detail: Any, path: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """DRF's nested error detail as ``[{field, code, message}]`` with dotted paths."""
    if isinstance(detail, dict):
        return [
            error
            for key, value in detail.items()
            for error in flatten_errors(value, (*path, str(key)))
        ]
    if isinstance(detail, list):
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(detail):
            if isinstance(item, dict | list):
                errors.extend(flatten_errors(item, (*path, str(index))))
            else:
                errors.extend(flatten_errors(item, path))
        return errors
    field = ".".join(path) or None
    if field == api_settings.NON_FIELD_ERRORS_KEY:
        field = None
    return [
        {"field": field, "code": getattr(detail, "code", None) or "invalid", "message": str(detail)}
    ]


def _path(request: HttpRequest | None) -> str:
    return request.path if request is not None else ""


def _method(request: HttpRequest | None) -> str:
    return (request.method or "") if request is not None else ""


def _content_type(request: HttpRequest | None) -> str | None:
    return request.content_type if request is not None else None


def _db_operation(request: HttpRequest | None) -> str:
    return "read" if request is not None and request.method in ("GET", "HEAD") else "write"


def _body_limit(request: HttpRequest | None) -> int | None:
    return body_limit(request.path) if request is not None else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
