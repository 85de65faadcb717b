"""DRF's JSON parser within bounds: depth, value count and number sizes are checked first."""

from __future__ import annotations

from typing import Any

from rest_framework.parsers import JSONParser

from .documents import Bounds, DocumentRefused, load_json
from .exceptions import MalformedRequestError, ValidationError
from .settings import reliability_settings


class BoundedJSONParser(JSONParser):
    """A view narrows or widens the bounds with a ``json_bounds`` attribute (a ``Bounds``)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read() if stream is not None else b""
        view = (parser_context or {}).get("view")
        bounds = getattr(view, "json_bounds", None) or default_bounds()
        try:
            return load_json(raw, bounds)
        except DocumentRefused as refused:
            raise refusal_error(refused, None, "The request body") from None


def default_bounds() -> Bounds:
    return Bounds(
        max_depth=reliability_settings.JSON_MAX_DEPTH,
        max_values=reliability_settings.JSON_MAX_VALUES,
    )


def refusal_error(
    refused: DocumentRefused, part: str | None, subject: str
) -> MalformedRequestError | ValidationError:
    """The 400 for ``refused``: an unreadable body is malformed; anything else names the field."""
    if part is None and refused.is_unparsable:
        return MalformedRequestError(f"{subject} is not readable: {refused.reason}")
    field = refused.field(part)
    return ValidationError(
        f"{subject} was refused: {refused.reason}",
        errors=[{"field": field, "code": refused.code, "message": refused.reason}],
    )
