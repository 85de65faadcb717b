"""DRF's JSON parser within bounds: depth, value count and number sizes are checked first."""

from __future__ import annotations

from typing import Any

from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer

from .documents import Bounds, DocumentRefused, load_json
from .exceptions import MalformedRequestError, ValidationError
from .settings import reliability_settings


class BoundedJSONParser(BaseParser):
    """``application/json`` within bounds; a view sets others with ``json_bounds`` (a ``Bounds``).

    Not a ``JSONParser`` subclass on purpose: DRF hands those ``request.body``, which Django
    keeps on the request — and a request lives until the cyclic collector frees it (Django's
    own ``request.auser`` is a cycle). Given the stream, only this call holds the body.
    """

    media_type = "application/json"
    renderer_class = JSONRenderer

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        view = (parser_context or {}).get("view")
        bounds = getattr(view, "json_bounds", None) or default_bounds()
        try:
            return load_json(stream.read() if stream is not None else b"", bounds)
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
    """The 400 for ``refused``: an unreadable body is malformed; anything else names the field.

    Drops ``refused``'s traceback: its frames hold the refused input, which the 400 (whose
    context ``refused`` becomes) would otherwise keep alive as long as the request.
    """
    refused.__traceback__ = None
    if part is None and refused.is_unparsable:
        return MalformedRequestError(f"{subject} is not readable: {refused.reason}")
    field = refused.field(part)
    return ValidationError(
        f"{subject} was refused: {refused.reason}",
        errors=[{"field": field, "code": refused.code, "message": refused.reason}],
    )
