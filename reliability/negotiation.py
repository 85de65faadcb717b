"""DRF content negotiation that never refuses a client asking for problem+json."""

from __future__ import annotations

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation

from .envelope import PROBLEM_JSON


class ProblemJsonAwareNegotiation(DefaultContentNegotiation):
    """``Accept: application/problem+json`` gets JSON, and its errors the RFC 9457 envelope.

    Without this DRF answers such a client 406 before the view runs, so the
    real error (404, 409, ...) is never reported.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            if PROBLEM_JSON not in request.META.get("HTTP_ACCEPT", ""):
                raise
            return renderers[0], renderers[0].media_type
