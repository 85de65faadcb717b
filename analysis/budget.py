"""Time budgets: how long a job may take, and the worker limits that follow from it.

The single rule: a job's budget is its observation time plus a fixed allowance
for deploying, becoming ready and waiting for Kubescape; Celery's soft and hard
limits sit above the budget, so the pipeline's own timeout (ANALYSIS_TIMEOUT,
with cleanup) always fires before the worker is killed.
"""

from __future__ import annotations

import math

from django.conf import settings

MIN_ANALYSIS_SECONDS = 90
MAX_ANALYSIS_SECONDS = 3600
# What a typical job spends outside its observation window (image pull, readiness, scan).
TYPICAL_OVERHEAD_SECONDS = 120


def job_budget_seconds(analysis_duration: int) -> int:
    """The longest a job may run from claim to result before it is timed out."""
    return analysis_duration + settings.ANALYSIS_SETUP_ALLOWANCE_SECONDS


def task_time_limits(analysis_duration: int) -> tuple[int, int]:
    """Celery (soft, hard) limits for a job: above the budget, with room to clean up."""
    soft = job_budget_seconds(analysis_duration) + settings.ANALYSIS_CLEANUP_ALLOWANCE_SECONDS
    return soft, soft + settings.ANALYSIS_CLEANUP_ALLOWANCE_SECONDS


def estimated_duration_minutes(analysis_duration: int) -> int:
    return math.ceil((analysis_duration + TYPICAL_OVERHEAD_SECONDS) / 60)
