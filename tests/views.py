"""Test-only views: each one fails in one particular way (see ``tests/urls.py``).

DRF views exercise ``reliability.handlers.exception_handler``; the plain Django
views exercise ``reliability.middleware.ErrorEnvelopeMiddleware``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from analysis import exceptions as domain
from reliability import exceptions as ours

SECRET_TEXT = "password=hunter2 at db.internal:5432"
DRIVER_TEXT = (
    'connection to server at "db.internal" (10.0.0.3), port 5432 failed: '
    'FATAL:  password authentication failed for user "vexxy"'
)
view_logger = logging.getLogger("tests.views")


class UnguardedAPIView(APIView):
    """Independent of the project's DRF defaults: no authentication, permission or throttle."""

    authentication_classes = []
    permission_classes = []
    throttle_classes = []


# -- validation ------------------------------------------------------------------------


class MountSerializer(serializers.Serializer):
    path = serializers.CharField()


class ConfigSerializer(serializers.Serializer):
    ports = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=65535))
    mounts = MountSerializer(many=True, required=False)


class SubmitSerializer(serializers.Serializer):
    image_ref = serializers.CharField(max_length=20)
    config = ConfigSerializer()

    def validate(self, attrs):
        if attrs["image_ref"] == "forbidden":
            raise serializers.ValidationError("This image may not be analysed.", code="forbidden")
        return attrs


class SubmitView(UnguardedAPIView):
    """POST only, JSON only: validation, malformed JSON, 415 and 405."""

    parser_classes = [JSONParser]

    def post(self, request):
        serializer = SubmitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data, status=201)


# -- authentication ------------------------------------------------------------------------


class ChallengeAuthentication(BaseAuthentication):
    """Never authenticates anyone, but offers a challenge so that DRF answers 401."""

    def authenticate(self, request):
        return None

    def authenticate_header(self, request):
        return 'Api-Key realm="api"'


class ProtectedView(UnguardedAPIView):
    authentication_classes = [ChallengeAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"ok": True})


# -- success, with a log line of its own -------------------------------------------------


class ItemView(UnguardedAPIView):
    def get(self, request, pk: int):
        view_logger.info("looking at item %s", pk)
        return Response({"id": pk})


# -- DRF views that raise --------------------------------------------------------------------


def raising(factory: Callable[[], BaseException]):
    """A DRF GET view that raises ``factory()``."""

    class RaisingView(UnguardedAPIView):
        def get(self, request):
            raise factory()

    return RaisingView.as_view()


RAISERS: dict[str, Callable[[], BaseException]] = {
    "permission-denied": lambda: drf.PermissionDenied("Not your job."),
    "throttled": lambda: drf.Throttled(wait=12),
    "not-found": lambda: drf.NotFound("No such thing."),
    "job-not-found": lambda: domain.JobNotFoundError("3f1c0d2e"),
    "invalid-job-state": lambda: domain.InvalidJobStateError(
        "3f1c0d2e", "running", ["complete", "failed"]
    ),
    "quota-exceeded": lambda: domain.QuotaExceededError(
        "monthly_analyses", 100, 100, retry_after=3600
    ),
    "service-unavailable": lambda: ours.ServiceUnavailableError("kubernetes", "no cluster"),
    "runtime-error": lambda: RuntimeError(f"could not connect: {SECRET_TEXT}"),
    "operational-error": lambda: OperationalError(DRIVER_TEXT),
}


# -- plain Django views (no DRF) -----------------------------------------------------------


def plain_runtime_error(request: HttpRequest):
    raise RuntimeError(f"could not connect: {SECRET_TEXT}")


def plain_not_found(request: HttpRequest):
    raise Http404("secret object 42 is missing")


def plain_permission_denied(request: HttpRequest):
    raise DjangoPermissionDenied("secret reason")


def plain_csrf_protected(request: HttpRequest) -> JsonResponse:
    """An ordinary view: no ``csrf_exempt``, so a POST without a token fails CSRF."""
    return JsonResponse({"ok": True})
