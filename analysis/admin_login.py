"""A WARNING for every admin lockout: someone is guessing passwords."""

from __future__ import annotations

import logging
from typing import Any

from axes.signals import user_locked_out
from django.dispatch import receiver

logger = logging.getLogger(__name__)


@receiver(user_locked_out, dispatch_uid="analysis.admin_login.lockout")
def log_lockout(sender: Any, request: Any, username: str | None, ip_address: str | None, **_: Any):
    logger.warning(
        "Admin login locked out for %s from %s after repeated failures",
        username,
        ip_address,
        extra={"username": username, "client_ip": ip_address, "event": "admin_lockout"},
    )
