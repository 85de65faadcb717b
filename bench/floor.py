"""The floor of ``bench/api_load.py``: the service's URLs plus one bare Django JSON view.

``DJANGO_SETTINGS_MODULE=bench.floor_settings`` serves everything ``vexxy.settings``
serves, under the same middleware, and ``/bench/floor``: a plain view that returns a
constant body of the status endpoint's shape, with no DRF, no authentication and no
database. Whatever the API costs above it is ours to explain.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

BODY = {
    "job_id": "11111111-2222-4333-8444-555555555555",
    "status": "running",
    "progress_percent": 40,
    "current_phase": "analyzing",
    "attempts": 1,
    "created_at": "2026-11-01T00:00:00Z",
    "started_at": "2026-11-01T00:00:05Z",
    "completed_at": None,
    "cancelled_at": None,
    "error_code": "",
    "error_message": "",
}


def floor(request: HttpRequest) -> JsonResponse:
    return JsonResponse(BODY)


class DrfFloor(APIView):
    """The same body from a DRF view with no authentication, permission or throttle."""

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []

    def get(self, request: Request) -> Response:
        return Response(BODY)


urlpatterns = [
    path("bench/floor", floor),
    path("bench/drf-floor", DrfFloor.as_view()),
    path("", include("vexxy.urls")),
]
