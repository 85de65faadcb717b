"""Settings helpers that need nothing but Django: usable in the bare-project run too."""

from __future__ import annotations

from typing import Any


def override_reliability(settings: Any, **values: Any) -> None:
    """Change keys of ``RELIABILITY`` for one test (pytest-django's ``settings`` restores it)."""
    settings.RELIABILITY = {**getattr(settings, "RELIABILITY", {}), **values}
