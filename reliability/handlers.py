"""DRF's ``EXCEPTION_HANDLER``: every exception inside an API view becomes the envelope."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from rest_framework.views import set_rollback

from .envelope import error_response


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse:
    set_rollback()
    request = context["request"]
    return error_response(getattr(request, "_request", request), exc)
