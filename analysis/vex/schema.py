"""The OpenVEX v0.2.0 JSON schema (openvex/spec, CC0-1.0), shipped with the package."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from reliability.exceptions import InternalServiceError


@cache
def validator() -> Draft202012Validator:
    schema = json.loads(resources.files(__package__).joinpath("openvex_json_schema.json")
                        .read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


class InvalidVexDocument(InternalServiceError):
    """We built a document the schema rejects: a bug, never the client's fault."""


def validate_document(document: dict[str, Any]) -> None:
    errors = sorted(validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        place = "/".join(str(p) for p in first.absolute_path) or "(document)"
        raise InvalidVexDocument(
            "vex-builder",
            f"Generated OpenVEX document is invalid at {place}: {first.message} "
            f"({len(errors)} error(s))",
        )
