"""DRF's ``EXCEPTION_HANDLER``: every exception inside an API view becomes the envelope."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.views import set_rollback

from .envelope import error_response
from .exceptions import MethodNotAllowedError


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse:
    set_rollback()
    request = context["request"]
    if isinstance(exc, MethodNotAllowed):
        allowed = list(getattr(context.get("view"), "allowed_methods", None) or [])
        exc = MethodNotAllowedError(request.method, allowed or None, message=str(exc.detail))
    return error_response(getattr(request, "_request", request), exc)
