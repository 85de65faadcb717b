"""The OpenVEX v0.2.0 JSON schema (openvex/spec, CC0-1.0), shipped with the package.

jsonschema checks ``uniqueItems`` by comparing every pair of statements (dicts
cannot be hashed), which is quadratic: minutes at 10k statements. So the
statements' uniqueness is checked here in linear time, on their canonical
JSON, and the schema is applied without that one keyword; every other rule
of the official schema applies unchanged.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from reliability.exceptions import InternalServiceError


def official_schema() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("openvex_json_schema.json").read_text())


@cache
def validator() -> Draft202012Validator:
    schema = official_schema()
    Draft202012Validator.check_schema(schema)
    relaxed = copy.deepcopy(schema)
    del relaxed["properties"]["statements"]["uniqueItems"]
    return Draft202012Validator(relaxed)


class InvalidVexDocument(InternalServiceError):
    """We built a document the schema rejects: a bug, never the client's fault."""


def first_error(checker: Any, document: Any) -> tuple[str, str, int] | None:
    """(place, message, number of errors) of a jsonschema validator's first error, or None."""
    errors = sorted(checker.iter_errors(document), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    place = "/".join(str(p) for p in errors[0].absolute_path) or "(document)"
    return place, errors[0].message, len(errors)


def validate_document(document: dict[str, Any]) -> None:
    error = first_error(validator(), document)
    if error is not None:
        place, message, count = error
        raise InvalidVexDocument(
            "vex-builder",
            f"Generated OpenVEX document is invalid at {place}: {message} ({count} error(s))",
        )
    duplicate = first_duplicate(document.get("statements") or [])
    if duplicate is not None:
        raise InvalidVexDocument(
            "vex-builder",
            f"Generated OpenVEX document is invalid at statements/{duplicate}: "
            "statements must be unique",
        )


def first_duplicate(items: list[Any]) -> int | None:
    """Index of the first item equal to an earlier one: ``uniqueItems`` in linear time."""
    seen: set[str] = set()
    for index, item in enumerate(items):
        canonical = json.dumps(item, sort_keys=True, separators=(",", ":"))
        if canonical in seen:
            return index
        seen.add(canonical)
    return None
