"""API keys: ``vx_<prefix>_<secret>``, of which only a hash of the secret is stored.

The secret is 256 random bits, so a single SHA-256 is enough: there is nothing
to brute-force that a slow password hash would protect, and every request
pays for the check. The prefix is public and finds the row; the comparison of
hashes is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

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


def verify_key(plaintext: str) -> ApiKey:
    parts = plaintext.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        raise KeyRejected("Malformed API key.")
    _, prefix, secret = parts
    api_key = ApiKey.objects.select_related("organization").filter(prefix=prefix).first()
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


def _touch(api_key: ApiKey) -> None:
    now = timezone.now()
    last = api_key.last_used_at
    if last is None or (now - last).total_seconds() >= LAST_USED_RESOLUTION_SECONDS:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
