"""DRF's ``JSONRenderer`` encoding with orjson: the same documents, a few times faster.

DRF encodes with the standard library's ``json`` and its ``JSONEncoder`` for dates, decimals,
UUIDs, lazy strings and the like. orjson encodes dicts, lists, strings and numbers itself (in
Rust) and hands everything else to the renderer's ``encoder_class``, dates and times included,
since DRF spells them its own way (milliseconds, ``Z``). What still differs:

- a float may be spelled differently (``0.00001`` for ``1e-05``), never valued differently;
- ``NaN`` and the infinities become ``null``, where DRF's strict mode fails the response;
- a dict subclass is written in its insertion order: an ``OrderedDict`` reordered with
  ``move_to_end`` is not (DRF's serializers never reorder one).

DRF renders the rest itself: an indented response (``Accept: application/json; indent=4``), a
renderer set to ASCII or to spaced output, and a value orjson refuses (a key that is not a
string, an integer beyond 64 bits, nesting deeper than 254) — given, for the objects orjson has
already converted (a generator it consumed), what the encoder made of them then.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME
# DRF escapes these two for JavaScript, which reads them as line ends inside a string.
_LINE_SEPARATORS = ((b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))


class OrjsonRenderer(JSONRenderer):
    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: dict[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        if not self._orjson_renders(accepted_media_type, renderer_context):
            return super().render(data, accepted_media_type, renderer_context)
        encoder = self.encoder_class()
        converted: dict[int, tuple[Any, Any]] = {}

        def default(value: Any) -> Any:
            converted[id(value)] = (value, encoder.default(value))
            return converted[id(value)][1]

        try:
            rendered = orjson.dumps(data, default=default, option=_OPTIONS)
        except orjson.JSONEncodeError:
            return self._drf_render(data, accepted_media_type, renderer_context, converted)
        for raw, escaped in _LINE_SEPARATORS:
            if raw in rendered:
                rendered = rendered.replace(raw, escaped)
        return rendered

    def _orjson_renders(
        self, accepted_media_type: str | None, renderer_context: dict[str, Any] | None
    ) -> bool:
        indent = self.get_indent(accepted_media_type or "", renderer_context or {})
        return indent is None and self.compact and not self.ensure_ascii

    def _drf_render(
        self,
        data: Any,
        accepted_media_type: str | None,
        renderer_context: dict[str, Any] | None,
        converted: dict[int, tuple[Any, Any]],
    ) -> bytes:
        base: type[json.JSONEncoder] = self.encoder_class

        class Replaying(base):  # type: ignore[misc, valid-type]
            def default(self, value: Any) -> Any:
                seen = converted.get(id(value))
                return seen[1] if seen is not None and seen[0] is value else super().default(value)

        renderer = copy.copy(self)
        renderer.encoder_class = Replaying
        return JSONRenderer.render(renderer, data, accepted_media_type, renderer_context)
