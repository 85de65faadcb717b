"""Large JSON columns sent as the database holds them: text in chunks, never Python objects.

A 100,000-statement VEX is about 46 MB of JSON; decoded into dicts it is ten
times that, per request. Read as one string (cast in the database) it costs
its own size, and the response sends it a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from django.http import StreamingHttpResponse

CHUNK_CHARACTERS = 64 * 1024


def column_text(queryset: QuerySet, field: str) -> str | None:
    """The JSON text of ``field`` of the first row, or None when there is no row."""
    return queryset.annotate(_text=Cast(field, TextField())).values_list("_text", flat=True).first()


def streamed_json(
    text: str, content_type: str, filename: str | None = None
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(_chunks(text), content_type=content_type)
    if filename is not None:
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _chunks(text: str) -> Iterator[str]:
    for start in range(0, len(text), CHUNK_CHARACTERS):
        yield text[start : start + CHUNK_CHARACTERS]
