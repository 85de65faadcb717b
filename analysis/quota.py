"""Monthly analysis quota per organization, checked and counted in one transaction.

The organization row is locked (``SELECT … FOR UPDATE``) for the check and the
increment, so concurrent submissions of one organization queue up behind each
other and can never be admitted past the limit. SQLite has no row locks, but its
write transactions (``BEGIN IMMEDIATE`` in our settings) are serialised anyway.
"""

from __future__ import annotations

import math
from datetime import date, datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from analysis import metrics
from analysis.exceptions import QuotaExceededError
from analysis.models import MonthlyUsage, Organization

QUOTA_TYPE = "monthly_analyses"


def month_start(moment: datetime) -> date:
    return moment.date().replace(day=1)


def seconds_until_next_month(moment: datetime) -> int:
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (
        first.replace(year=first.year + 1, month=1)
        if first.month == 12
        else (first.replace(month=first.month + 1))
    )
    return max(1, math.ceil((following - moment).total_seconds()))


def consume(organization: Organization, now: datetime | None = None) -> int:
    """Count one analysis, or raise ``QuotaExceededError``; returns the new count.

    Must run inside the transaction that creates the job, so a failed creation
    does not use up quota.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("quota.consume() must run inside transaction.atomic()")
    now = now or timezone.now()
    locked = Organization.objects.select_for_update().get(pk=organization.pk)
    usage, _ = MonthlyUsage.objects.get_or_create(organization=locked, month=month_start(now))
    limit = locked.monthly_analysis_quota
    if usage.analyses >= limit:
        metrics.quota_refused(QUOTA_TYPE)
        raise QuotaExceededError(
            QUOTA_TYPE, limit, usage.analyses, retry_after=seconds_until_next_month(now)
        )
    MonthlyUsage.objects.filter(pk=usage.pk).update(analyses=F("analyses") + 1)
    return usage.analyses + 1
