"""Command-line tools a test needs: skipped where they are missing, failed in CI, which has them."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """Skip locally; fail when ``CI`` is set, since .ci/run installs every tool the suite uses."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set: {reason}")
    pytest.skip(reason)


def required_tool(name: str, package: str) -> str:
    """The path of the command ``name`` (Debian package ``package``)."""
    path = shutil.which(name)
    if not path:
        unavailable(f"needs {name} (apt-get install {package})")
    return path
