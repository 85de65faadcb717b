"""Who may scrape ``/metrics``: loopback, ``METRICS_ALLOWED_NETWORKS``, or the bearer token.

The address is the client's as :mod:`reliability.client_ip` sees it (forwarded
headers believed from ``TRUSTED_PROXIES`` only). A request that reaches us from
loopback but carries ``X-Forwarded-For`` through an untrusted hop came through a
local proxy from somewhere else: it gets no loopback privilege.
"""

from __future__ import annotations

import hmac
import ipaddress
from functools import cache

from django.http import HttpRequest

from ..client_ip import Network, parse_networks, request_client_ip
from ..exceptions import ForbiddenError, UnauthorizedError, VexxyException
from ..settings import reliability_settings

BEARER = "bearer "


def refusal(request: HttpRequest) -> VexxyException | None:
    """``None`` when the scrape is allowed; otherwise the error to answer with."""
    token = reliability_settings.METRICS_TOKEN
    supplied = _bearer_token(request)
    if supplied is not None and token and hmac.compare_digest(supplied.encode(), token.encode()):
        return None
    if _address_allowed(request):
        return None
    if supplied is None and token:
        return UnauthorizedError(
            "Metrics need a bearer token from this address.", auth_scheme="Bearer"
        )
    return ForbiddenError("This address may not read the metrics.")


def _bearer_token(request: HttpRequest) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header[: len(BEARER)].lower() != BEARER:
        return None
    return header[len(BEARER) :].strip()


def _address_allowed(request: HttpRequest) -> bool:
    ip = request_client_ip(request)
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return False
    if address.is_loopback:
        return not _through_untrusted_local_proxy(request)
    networks = _networks(tuple(reliability_settings.METRICS_ALLOWED_NETWORKS))
    return any(address in network for network in networks)


def _through_untrusted_local_proxy(request: HttpRequest) -> bool:
    if not request.META.get("HTTP_X_FORWARDED_FOR", "").strip():
        return False
    proxies = _networks(tuple(reliability_settings.TRUSTED_PROXIES))
    remote = ipaddress.ip_address(request.META.get("REMOTE_ADDR") or "127.0.0.1")
    return not any(remote in network for network in proxies)


@cache
def _networks(values: tuple[str, ...]) -> tuple[Network, ...]:
    return parse_networks(values)
