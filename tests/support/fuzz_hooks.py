"""schemathesis hooks: cross-field rules of valid requests that OpenAPI cannot state.

Loaded by the fuzzing run through ``SCHEMATHESIS_HOOKS``. Only schema-valid (positive) cases
are touched, and only to satisfy the rule; invalid cases stay as generated.
"""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """A reference pinned by digest names the same digest as ``image_digest``."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return case
    reference = case.body.get("image_ref")
    if isinstance(reference, str) and "@" in reference:
        case.body["image_digest"] = reference.rsplit("@", 1)[1]
    return case
