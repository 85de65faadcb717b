"""Health endpoints and the CSRF failure view.

Plain Django views: they must answer when DRF, the database or the cache do not.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .correlation import get_request_id
from .envelope import error_response, render_error
from .exceptions import ForbiddenError, ServiceUnavailableError, utc_timestamp
from .health import HealthReport, run_checks
from .settings import reliability_settings


def _document(report: HealthReport) -> dict:
    # "health" repeats "status" under a name of its own: in the problem+json form of a 503,
    # RFC 9457 gives "status" to the HTTP status code.
    return {
        "status": report.status,
        "health": report.status,
        "service": reliability_settings.SERVICE_NAME,
        "version": reliability_settings.SERVICE_VERSION,
        "timestamp": utc_timestamp(),
        "request_id": get_request_id(),
        "checks": {name: result.as_dict() for name, result in report.checks.items()},
    }


def _respond(request: HttpRequest, report: HealthReport) -> JsonResponse:
    body = _document(report)
    if report.http_status == 200:
        return JsonResponse(body)
    failing = report.unhealthy_required
    # An unhealthy answer is also the error envelope, so clients need one parser.
    error = ServiceUnavailableError(
        ", ".join(failing),
        "health check failed",
        f"Unhealthy: {', '.join(failing)}",
        retry_after=reliability_settings.HEALTH_RETRY_AFTER,
    )
    error.details = {"unhealthy": failing}
    return render_error(request, error, extra=body)


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    return _respond(request, run_checks())


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    return _respond(request, run_checks(["database"]))


@never_cache
@require_safe
def livez(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "status": "alive",
            "service": reliability_settings.SERVICE_NAME,
            "request_id": get_request_id(),
        }
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if request.path.startswith(tuple(reliability_settings.ERROR_ENVELOPE_PATHS)):
        return error_response(request, ForbiddenError(f"CSRF verification failed: {reason}"))
    return django_csrf_failure(request, reason)
