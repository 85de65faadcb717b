"""DRF's ``JSONRenderer`` encoding with orjson: the same documents, a few times faster.

DRF encodes with the standard library's ``json`` and its ``JSONEncoder`` for dates, decimals,
UUIDs, lazy strings and the like. orjson encodes dicts, lists, strings and numbers itself (in
Rust) and hands everything else to that same encoder's ``default``, dates and times included,
since DRF spells them its own way (milliseconds, ``Z``). What still differs:

- a float may be spelled differently (``0.00001`` for ``1e-05``), never valued differently;
- ``NaN`` and the infinities become ``null``, where DRF's strict mode fails the response.

An indented response (``Accept: application/json; indent=4``) and a value orjson refuses
(an integer beyond 64 bits) are rendered by DRF itself.
"""

from __future__ import annotations

from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
_default = JSONEncoder().default
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
        if self.get_indent(accepted_media_type or "", renderer_context or {}) is None:
            try:
                rendered = orjson.dumps(data, default=_default, option=_OPTIONS)
            except orjson.JSONEncodeError:
                pass  # DRF says what it cannot encode, or encodes it
            else:
                for raw, escaped in _LINE_SEPARATORS:
                    if raw in rendered:
                        rendered = rendered.replace(raw, escaped)
                return rendered
        return super().render(data, accepted_media_type, renderer_context)
