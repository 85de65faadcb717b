"""Request-level reliability: correlation IDs, timing, request logs, error envelopes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.core.exceptions import DisallowedHost, SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control
from django.views.defaults import bad_request

from . import correlation
from .client_ip import request_client_ip
from .envelope import error_response, is_envelope, log_error, render_error
from .error_mapping import from_status, to_vexxy_exception
from .exceptions import BadRequestError, LengthRequiredError, PayloadTooLargeError
from .limits import body_limit
from .metrics.definitions import observe_request
from .redaction import redact_mapping
from .settings import reliability_settings

request_logger = logging.getLogger("reliability.requests")

GetResponse = Callable[[HttpRequest], HttpResponse]


class RequestContextMiddleware:
    """Outermost middleware: binds the correlation ID, times and logs the request.

    Everything inside it, including Django's conversion of uncaught exceptions
    into 500 responses, happens within the correlation scope, so the traceback's
    log record carries the same ID as the response header.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        supplied = request.META.get(correlation.META_KEY)
        request_id = supplied if correlation.is_valid_request_id(supplied) else None
        with correlation.correlation_scope(request_id) as request_id:
            request.request_id = request_id  # type: ignore[attr-defined]
            if supplied is not None and supplied != request_id:
                request_logger.info(
                    "Replaced an invalid X-Request-ID (%d characters) with %s",
                    len(supplied),
                    request_id,
                )
            response = self.get_response(request)
            seconds = time.perf_counter() - started
            match = getattr(request, "resolver_match", None)
            observe_request(
                match.route if match else None, request.method, response.status_code, seconds
            )
            duration_ms = seconds * 1000
            response[correlation.HEADER] = request_id
            response["X-Response-Time"] = f"{duration_ms:.1f}ms"
            self._log(request, response, duration_ms)
        return response

    def _log(self, request: HttpRequest, response: HttpResponse, duration_ms: float) -> None:
        match = getattr(request, "resolver_match", None)
        organization = getattr(request, "organization", None)
        request_logger.info(
            "request_finished",
            extra={
                "method": request.method,
                "path": request.path,
                "route": match.route if match else None,
                "query_params": _query_params(request),
                "status": response.status_code,
                "duration_ms": round(duration_ms, 2),
                "user_agent": request.headers.get("User-Agent", ""),
                "client_ip": request_client_ip(request),
                "organization": str(organization) if organization is not None else None,
            },
        )


def _query_params(request: HttpRequest) -> dict[str, object] | None:
    """The redacted query, or ``None`` when Django refuses to parse it (too many fields).

    The view has answered by now; a query it refused must not turn its response into
    Django's HTML 400 on the way out.
    """
    try:
        return redact_mapping({k: v[0] if len(v) == 1 else v for k, v in request.GET.lists()})
    except SuspiciousOperation:
        return None


class NoStoreMiddleware:
    """``Cache-Control: no-store`` on every response of the API paths (``ERROR_ENVELOPE_PATHS``).

    API answers are per caller and often secret (jobs, VEX, keys): no shared or
    browser cache may keep them. A view that set its own policy keeps it.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if is_api_path(request) and not response.has_header("Cache-Control"):
            patch_cache_control(response, no_store=True)
        return response


def is_api_path(request: HttpRequest) -> bool:
    return request.path.startswith(tuple(reliability_settings.ERROR_ENVELOPE_PATHS))


class ErrorEnvelopeMiddleware:
    """Makes every error on the API and health paths the JSON envelope.

    Three routes lead here: exceptions raised by plain Django views
    (``process_exception``), requests refused before any view runs (host and
    body-size checks), and error responses that Django built by itself — unknown
    URLs, CSRF failures, 500 pages — which are rewritten from their status.
    Admin and other HTML pages are left as they are.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api_path(request):
            return self._refuse_bad_host_as_html(request) or self.get_response(request)
        refused = self._refuse_early(request)
        if refused is not None:
            return refused
        response = self.get_response(request)
        if response.status_code >= 400 and not is_envelope(response):
            response = self._rewrite(request, response)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_api_path(request):
            return None
        return error_response(request, exception)

    @staticmethod
    def _refuse_bad_host_as_html(request: HttpRequest) -> HttpResponse | None:
        """Django's own 400 page, logged as the client's mistake it is.

        Left to Django, a bad Host on the admin or any other page is an ERROR
        with a traceback, which buries the errors that need somebody.
        """
        try:
            request.get_host()
        except DisallowedHost as exc:
            log_error(request, to_vexxy_exception(exc, request), exc)
            response = bad_request(request, exc)
            response._has_been_logged = True  # type: ignore[attr-defined]
            return response
        return None

    @staticmethod
    def _refuse_early(request: HttpRequest) -> HttpResponse | None:
        try:
            request.get_host()
        except DisallowedHost as exc:
            return error_response(request, exc)
        declared = request.META.get("CONTENT_LENGTH")
        if not declared and request.META.get("HTTP_TRANSFER_ENCODING"):
            # WSGI reads no body without Content-Length: refuse it rather than see it empty.
            return error_response(request, LengthRequiredError())
        declared = declared or "0"
        try:
            length = int(declared)
        except ValueError:
            return error_response(request, BadRequestError("Content-Length is not a number."))
        limit = body_limit(request.path)
        if limit is not None and length > limit:
            return error_response(
                request,
                PayloadTooLargeError(limit, f"The request body exceeds {limit} bytes."),
            )
        return None

    @staticmethod
    def _rewrite(request: HttpRequest, response: HttpResponse) -> HttpResponse:
        error = from_status(response.status_code, request)
        if response.has_header("Allow"):
            error.headers["Allow"] = response["Allow"]
            error.details["allowed_methods"] = [m.strip() for m in response["Allow"].split(",")]
        # The traceback of a 500 was logged by Django's handler with this request's ID.
        if response.status_code < 500:
            log_error(request, error, error)
        return render_error(request, error)
