"""DRF authentication by API key, and the principal it yields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from analysis.api_keys import CacheRead, KeyRejected, hash_secret, parse_key, verify_key
from analysis.models import ApiKey, Organization
from reliability.cache import counts_in_one_trip, get_and_count
from reliability.throttling import FixedWindowRateThrottle

AUTH_SCHEME = "Api-Key"


@dataclass(frozen=True)
class ApiPrincipal:
    """``request.user`` for API calls: the key and the organization it acts for."""

    api_key: ApiKey

    is_authenticated = True
    is_anonymous = False

    @property
    def organization(self) -> Organization:
        return self.api_key.organization

    @property
    def pk(self) -> int:
        return self.api_key.pk

    def __str__(self) -> str:
        return f"api-key:{self.api_key.name}({self.api_key.prefix})"


class CountingRead(NamedTuple):
    throttle: ApiKeyRateThrottle
    key: str  # the throttle's key for the presented secret
    read: CacheRead


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Api-Key <key>`` or ``X-API-Key: <key>``."""

    def authenticate(self, request: Request) -> tuple[ApiPrincipal, ApiKey] | None:
        plaintext = self._presented_key(request)
        if plaintext is None:
            return None
        counted = None
        try:
            counted = self._counted_by(request, plaintext)
            api_key = verify_key(plaintext, counted and counted.read)
        except KeyRejected as rejected:
            if counted is not None:
                counted.throttle.discard_early_count(request._request, counted.key)
            raise exceptions.AuthenticationFailed(str(rejected)) from None
        # The request log names the organization of every authenticated call.
        request._request.organization = api_key.organization
        return ApiPrincipal(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return f'{AUTH_SCHEME} realm="vexxy"'

    @staticmethod
    def _counted_by(request: Request, plaintext: str) -> CountingRead | None:
        """A read of the key's cached row that also counts the request against the key's
        rate limit, in one round trip; None when the view has no such limit or the cache
        cannot do both at once (then the throttle counts on its own, after the checks).

        DRF runs throttles after permissions; counted here, a request that a permission
        then refuses has spent its place, but the API's one permission is having a key."""
        view = request.parser_context.get("view")
        throttles = view.get_throttles() if view is not None else []
        throttle = next((t for t in throttles if isinstance(t, ApiKeyRateThrottle)), None)
        if throttle is None or throttle.rate is None or not counts_in_one_trip(throttle.cache):
            return None
        key = throttle.key_for(hash_secret(parse_key(plaintext)[1]))

        def read(name: str) -> Any:
            value = None

            def increment(counter: str, ttl: int) -> int:
                nonlocal value
                value, count = get_and_count(throttle.cache, name, counter, ttl)
                return count

            throttle.count_early(request._request, key, increment)
            return value

        return CountingRead(throttle, key, read)

    @staticmethod
    def _presented_key(request: Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != AUTH_SCHEME.lower() or not value.strip():
                raise exceptions.AuthenticationFailed(
                    f"Use 'Authorization: {AUTH_SCHEME} <key>' or the X-API-Key header."
                )
            return value.strip()
        return request.headers.get("X-API-Key") or None


class HasApiKey(permissions.BasePermission):
    def has_permission(self, request: Request, view: object) -> bool:
        return isinstance(request.user, ApiPrincipal)


class ApiKeyRateThrottle(FixedWindowRateThrottle):
    """Requests per API key and window (``API_RATE_LIMIT``, e.g. ``600/minute``)."""

    scope = "api_key"

    def get_cache_key(self, request: Request, view: object) -> str | None:
        if not isinstance(request.user, ApiPrincipal):
            return None
        return self.key_for(request.user.api_key.secret_hash)

    def key_for(self, secret_hash: str) -> str:
        # By the key's secret (hashed), not its row: authentication counts the request
        # before it knows the row, and only a holder of the secret can spend its budget.
        return self.cache_format % {"scope": self.scope, "ident": secret_hash}
