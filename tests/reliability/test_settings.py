"""The reliability app's settings object: defaults, overrides, and typos caught at start."""

from __future__ import annotations

from django.core import checks

from reliability.settings import DEFAULTS, reliability_settings
from tests.support.settings import override_reliability


def test_defaults_then_overrides_and_back(settings):
    configured = getattr(settings, "RELIABILITY", {})
    assert configured.get("LOCK_CACHE", DEFAULTS["LOCK_CACHE"]) == reliability_settings.LOCK_CACHE
    override_reliability(settings, HEALTH_RETRY_AFTER=42)
    assert reliability_settings.HEALTH_RETRY_AFTER == 42


def test_a_misspelt_reliability_key_fails_the_system_checks(settings):
    override_reliability(settings, DEFAULT_MAX_RETRIE=4)
    errors = [m for m in checks.run_checks() if m.id == "reliability.E001"]
    assert [m.msg for m in errors] == ["Unknown RELIABILITY setting 'DEFAULT_MAX_RETRIE'"]
