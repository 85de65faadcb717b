"""Settings helpers that need nothing but Django: usable in the bare-project run too."""

from __future__ import annotations

from typing import Any


def override_reliability(settings: Any, **values: Any) -> None:
    """Change keys of ``RELIABILITY`` for one test (pytest-django's ``settings`` restores it)."""
    settings.RELIABILITY = {**getattr(settings, "RELIABILITY", {}), **values}


def small_pipeline_budgets(settings: Any, *, settle_seconds: float = 30) -> None:
    """An analysis against the Kubernetes API double: a 60 s setup budget, polls of at most
    5 s, 3 attempts per call and retries that wait 0 s (the clock may be real)."""
    settings.ANALYSIS_SETUP_ALLOWANCE_SECONDS = 60
    settings.SANDBOX_POLL_MAX_SECONDS = 5
    settings.KUBESCAPE_SETTLE_SECONDS = settle_seconds
    settings.K8S_MAX_ATTEMPTS = 3
    override_reliability(settings, DEFAULT_INITIAL_DELAY=0, DEFAULT_MAX_DELAY=10)
