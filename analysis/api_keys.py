"""API keys: ``vx_<prefix>_<secret>``, of which only a hash of the secret is stored.

The secret is 256 random bits, so a single SHA-256 is enough: there is nothing
to brute-force that a slow password hash would protect, and every request
pays for the check. The prefix is public and finds the row; the comparison of
hashes is constant-time.

The row (with its organization) is kept in the shared cache for
``API_KEY_CACHE_SECONDS``, so most requests skip the query; every change to a
key or its organization (saves, deletes, ``revoke_keys``) drops the entry at
once, in every process.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from analysis.models import ApiKey, Organization

KEY_PREFIX = "vx"
# Do not write last_used_at more often than this: a write per request is not worth it.
LAST_USED_RESOLUTION_SECONDS = 60


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    plaintext: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def fill_new_key(api_key: ApiKey) -> str:
    """Give an unsaved key its prefix and hash; returns the plaintext, shown once."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    api_key.prefix = prefix
    api_key.secret_hash = hash_secret(secret)
    return f"{KEY_PREFIX}_{prefix}_{secret}"


def issue_key(
    organization: Organization, name: str, expires_at: datetime | None = None
) -> IssuedKey:
    """Create a key; the plaintext exists only in the return value."""
    api_key = ApiKey(organization=organization, name=name, expires_at=expires_at)
    plaintext = fill_new_key(api_key)
    api_key.save()
    return IssuedKey(api_key, plaintext)


class KeyRejected(Exception):
    """The key is unusable; the message is safe to show its holder."""


# Reads the shared cache: ``cache.get``, or a call that does more in the same round trip.
CacheRead = Callable[[str], Any]


def parse_key(plaintext: str) -> tuple[str, str]:
    """The prefix and the secret of a presented key."""
    parts = plaintext.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        raise KeyRejected("Malformed API key.")
    return parts[1], parts[2]


def verify_key(plaintext: str, read: CacheRead | None = None) -> ApiKey:
    """The key's row, if the key is usable; its cached copy is read through ``read``."""
    prefix, secret = parse_key(plaintext)
    api_key = _find(prefix, read or cache.get)
    if api_key is None or not hmac.compare_digest(api_key.secret_hash, hash_secret(secret)):
        raise KeyRejected("Invalid API key.")
    if api_key.is_revoked:
        raise KeyRejected("API key has been revoked.")
    if api_key.is_expired:
        raise KeyRejected("API key has expired.")
    if not api_key.organization.is_active:
        raise KeyRejected("The organization of this API key is disabled.")
    _touch(api_key)
    return api_key


def revoke_keys(keys: QuerySet[ApiKey]) -> int:
    """Revoke the keys not revoked yet; they stop working at once. Returns how many."""
    live = keys.filter(revoked_at__isnull=True)
    prefixes = list(live.values_list("prefix", flat=True))
    count = live.update(revoked_at=timezone.now())
    forget_keys(prefixes)
    return count


def forget_keys(prefixes: list[str]) -> None:
    """Drop cached rows: the next request with these keys reads the database."""
    cache.delete_many([_cache_key(prefix) for prefix in prefixes])


def _cache_key(prefix: str) -> str:
    return f"api-key:{prefix}"


def _find(prefix: str, read: CacheRead) -> ApiKey | None:
    ttl = settings.API_KEY_CACHE_SECONDS
    if ttl > 0:
        cached = read(_cache_key(prefix))
        if cached is not None:
            return cached
    api_key = ApiKey.objects.select_related("organization").filter(prefix=prefix).order_by()
    api_key = api_key.first()
    if api_key is not None:
        _remember(api_key)
    return api_key


def _remember(api_key: ApiKey) -> None:
    ttl = settings.API_KEY_CACHE_SECONDS
    if ttl > 0:
        cache.set(_cache_key(api_key.prefix), api_key, ttl)


def _touch(api_key: ApiKey) -> None:
    now = timezone.now()
    last = api_key.last_used_at
    if last is None or (now - last).total_seconds() >= LAST_USED_RESOLUTION_SECONDS:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
        _remember(api_key)


@receiver(post_save, sender=ApiKey)
@receiver(post_delete, sender=ApiKey)
def _forget_changed_key(sender: type, instance: ApiKey, **kwargs: object) -> None:
    forget_keys([instance.prefix])


@receiver(post_save, sender=Organization)
def _forget_keys_of_changed_organization(
    sender: type, instance: Organization, **kwargs: object
) -> None:
    forget_keys(list(instance.api_keys.values_list("prefix", flat=True)))
