"""The client's address, believing forwarded headers only from trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import cache

from django.http import HttpRequest

from .settings import reliability_settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values if value)


def request_client_ip(request: HttpRequest) -> str | None:
    """``client_ip`` with the ``TRUSTED_PROXIES`` setting: a one-argument callable for others."""
    return client_ip(request, _trusted(tuple(reliability_settings.TRUSTED_PROXIES)))


@cache
def _trusted(values: tuple[str, ...]) -> tuple[Network, ...]:
    return parse_networks(values)


def client_ip(request: HttpRequest, trusted: tuple[Network, ...]) -> str | None:
    """Walk ``X-Forwarded-For`` from the right while hops are trusted proxies.

    The first untrusted hop is the client. With no trusted proxies configured
    the header is ignored: anyone can write it.
    """
    remote = request.META.get("REMOTE_ADDR")
    if not trusted or not _is_trusted(remote, trusted):
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop if _is_ip(hop) else remote
    return hops[0] if hops else remote


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_trusted(value: str | None, trusted: tuple[Network, ...]) -> bool:
    if not value or not _is_ip(value):
        return False
    address = ipaddress.ip_address(value)
    return any(address in network for network in trusted)
