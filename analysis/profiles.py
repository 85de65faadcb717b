"""Analysis profiles: presets, and how a client's partial config is applied to one.

A partial ``config`` overrides the preset key by key; keys it leaves out keep
the preset's value (``comprehensive`` with ``{}`` still observes for 900 s).
``test_timeout`` is the old name of ``analysis_duration``; both are stored, equal.
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    "analysis_duration": 300,
    "enable_fuzzing": False,
    "enable_profiling": True,
    "enable_pentesting": False,
    "enable_code_coverage": False,
    "health_check_timeout": 60,
    "health_check_path": None,
    "ports": [],
    "environment": {},
    "allow_egress": False,
}

PRESETS: dict[str, dict[str, Any]] = {
    "minimal": {
        "analysis_duration": 120,
        "enable_fuzzing": False,
        "enable_profiling": False,
        "enable_pentesting": False,
        "enable_code_coverage": False,
        "health_check_timeout": 30,
    },
    "standard": {
        "analysis_duration": 300,
        "enable_fuzzing": True,
        "enable_profiling": True,
        "enable_pentesting": False,
        "enable_code_coverage": False,
        "health_check_timeout": 60,
    },
    "comprehensive": {
        "analysis_duration": 900,
        "enable_fuzzing": True,
        "enable_profiling": True,
        "enable_pentesting": True,
        "enable_code_coverage": True,
        "health_check_timeout": 120,
    },
    "custom": {},
}

DEFAULT_PROFILE = "standard"


def normalize_config(profile: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The full configuration a job runs with: defaults ← preset ← overrides."""
    config = {**DEFAULTS, **PRESETS[profile]}
    overrides = dict(overrides)
    duration = overrides.pop("analysis_duration", None) or overrides.pop("test_timeout", None)
    overrides.pop("test_timeout", None)
    config.update(overrides)
    if duration is not None:
        config["analysis_duration"] = duration
    config["test_timeout"] = config["analysis_duration"]
    return config


REDACTED = "[REDACTED]"


def redacted(config: dict[str, Any] | None) -> dict[str, Any]:
    """``config`` as it may be shown: environment values may be secrets, their names are not."""
    shown = dict(config or {})
    if shown.get("environment"):
        shown["environment"] = dict.fromkeys(shown["environment"], REDACTED)
    return shown
