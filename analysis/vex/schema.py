"""The OpenVEX v0.2.0 JSON schema (openvex/spec, CC0-1.0), shipped with the package.

jsonschema checks ``uniqueItems`` by comparing every pair of statements (dicts
cannot be hashed), which is quadratic: minutes at 10k statements. So the
statements' uniqueness is checked here in linear time, on their canonical
JSON, and the schema is applied without that one keyword; every other rule
of the official schema applies unchanged.

jsonschema still takes about a millisecond a statement, so a document is first
checked by jsonschema-rs (compiled, the same draft, formats not asserted as in
jsonschema); only a document it refuses goes through jsonschema, whose first
error, located, is what ``InvalidVexDocument`` reports.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import jsonschema_rs

from reliability.exceptions import InternalServiceError

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator


def official_schema() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("openvex_json_schema.json").read_text())


def _relaxed_schema() -> dict[str, Any]:
    schema = official_schema()
    jsonschema_rs.Draft202012Validator(schema)  # raises on a schema that is not one
    relaxed = copy.deepcopy(schema)
    del relaxed["properties"]["statements"]["uniqueItems"]
    return relaxed


@cache
def validator() -> Draft202012Validator:
    # Imported when first needed: importing jsonschema costs seconds (its format checker
    # builds an RFC 3987 grammar), which every process and command paid at start-up.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(_relaxed_schema())


@cache
def fast_validator() -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator(_relaxed_schema(), validate_formats=False)


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
    error = None if fast_validator().is_valid(document) else first_error(validator(), document)
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
    seen: set[tuple[str, ...]] = set()
    lists: dict[int, str] = {}
    for index, item in enumerate(items):
        canonical = _canonical(item, lists)
        if canonical in seen:
            return index
        seen.add(canonical)
    return None


def _canonical(item: Any, lists: dict[int, str]) -> tuple[str, ...]:
    """Canonical JSON of ``item``; an object's list members apart, each list encoded once.

    Statements of one package share their ``products`` list: encoding it once per
    list, not once per statement, is most of the saving. ``lists`` is keyed by
    ``id``, so it is valid only while every item is alive and unchanged.
    """
    if type(item) is not dict:
        return (_dumps(item),)
    rest, parts = {}, []
    for key, value in item.items():
        if type(value) is list:
            encoded = lists.get(id(value))
            if encoded is None:
                encoded = lists[id(value)] = _dumps(value)
            parts.append((key, encoded))
        else:
            rest[key] = value
    return (_dumps(rest), *(part for pair in sorted(parts) for part in pair))


_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode  # once, not per call
