"""Keyset cursor pagination on a unique ordering, whose bad parameters are 400s naming them.

DRF's ``CursorPagination`` keeps the value of the first ordering field as the
position and an offset among the rows that share it. Rows with equal values
come back in whatever order the database likes, so a page boundary inside a
tie may skip or repeat rows, and past ``offset_cutoff`` (1,000) equal values
it pages in a circle. It also answers a cursor it cannot decode with a 404,
passes a decodable but tampered position to the database (a 500 when it is
not a value of the ordering column) and silently turns an invalid
``page_size`` into the default.

Here the ordering ends in a unique field (``("-created_at", "-id")``) and the
cursor holds every ordering field's value of the row at the page boundary;
the next page is the rows strictly beyond it (``created_at < c OR
(created_at = c AND id < i)``). No offset, no ties, the same query on every
page. Cursors are DRF's spelling (base64 of ``r=1&p=...``), one ``p`` per
ordering field.
"""

from __future__ import annotations

from base64 import b64decode, b64encode
from binascii import Error as Base64Error
from datetime import UTC, datetime
from typing import Any
from urllib import parse

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Field, Q, QuerySet
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.utils.urls import remove_query_param, replace_query_param

from .exceptions import ValidationError

Position = tuple[Any, ...]


class KeysetCursorPagination(CursorPagination):
    """Subclasses set ``ordering`` (a tuple whose last field is unique), ``page_size`` and
    ``max_page_size``. Pages are model instances or the dicts of ``values()``."""

    ordering: tuple[str, ...]
    page_size_query_param = "page_size"
    invalid_cursor_message = "Not a cursor this API gave: use a next or previous link as is."

    def paginate_queryset(
        self, queryset: QuerySet, request: Request, view: Any = None
    ) -> list[Any] | None:
        self.request = request
        self.base_url = request.build_absolute_uri()
        self.page_size = self.get_page_size(request)
        meta = queryset.model._meta
        self._keys: list[tuple[Field, bool]] = [
            (meta.get_field(name.lstrip("-")), name.startswith("-")) for name in self.ordering
        ]
        self._position, self._reverse = self._read_cursor(request)

        if self._position is not None:
            queryset = queryset.filter(self._beyond(self._position, self._reverse))
        ordering = [self._order(field, descending) for field, descending in self._keys]
        rows = list(queryset.order_by(*ordering)[: self.page_size + 1])
        more = len(rows) > self.page_size
        self.page = rows[: self.page_size]
        if self._reverse:  # without a position: back from the end, the last page
            self.page.reverse()
            self.has_previous, self.has_next = more, self._position is not None
        else:
            self.has_previous, self.has_next = self._position is not None, more
        return self.page

    def get_next_link(self) -> str | None:
        if not self.has_next:
            return None
        if not self.page:  # nothing before the cursor: the page after it is the first one
            return remove_query_param(self.base_url, self.cursor_query_param)
        return self._link(self._position_of(self.page[-1]), reverse=False)

    def get_previous_link(self) -> str | None:
        if not self.has_previous:
            return None
        if not self.page:  # nothing after the cursor: the page before it is the last one
            return self._link(None, reverse=True)
        return self._link(self._position_of(self.page[0]), reverse=True)

    def get_page_size(self, request: Request) -> int:
        given = request.query_params.get(self.page_size_query_param)
        if given is None:
            return self.page_size
        digits = given.isascii() and given.isdigit() and len(given) <= 9
        if not digits or not 1 <= int(given) <= self.max_page_size:
            raise invalid(
                self.page_size_query_param, f"Must be an integer from 1 to {self.max_page_size}."
            )
        return int(given)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(
                    minimum=1, maximum=self.max_page_size, default=self.page_size
                )
        return parameters

    # -- the position ------------------------------------------------------------------------

    def _beyond(self, position: Position, reverse: bool) -> Q:
        """Rows strictly after ``position`` in the ordering (before it when ``reverse``)."""
        beyond, equal = Q(), {}
        for (field, descending), value in zip(self._keys, position, strict=True):
            lookup = "lt" if descending != reverse else "gt"
            beyond |= Q(**equal, **{f"{field.attname}__{lookup}": value})
            equal[field.attname] = value
        # The first field's range on its own, so that its index bounds the scan.
        field, descending = self._keys[0]
        bound = Q(**{f"{field.attname}__{'lte' if descending != reverse else 'gte'}": position[0]})
        return bound & beyond

    def _order(self, field: Field, descending: bool) -> str:
        return f"{'-' if descending != self._reverse else ''}{field.attname}"

    def _position_of(self, row: Any) -> Position:
        if isinstance(row, dict):
            return tuple(row[field.attname] for field, _ in self._keys)
        return tuple(getattr(row, field.attname) for field, _ in self._keys)

    # -- the cursor --------------------------------------------------------------------------

    def _link(self, position: Position | None, *, reverse: bool) -> str:
        tokens = {"p": [_spell(value) for value in position or ()]}
        if reverse:
            tokens["r"] = ["1"]
        encoded = b64encode(parse.urlencode(tokens, doseq=True).encode("ascii")).decode("ascii")
        return replace_query_param(self.base_url, self.cursor_query_param, encoded)

    def _read_cursor(self, request: Request) -> tuple[Position | None, bool]:
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None, False
        try:
            query = b64decode(encoded.encode("ascii"), validate=True).decode("ascii")
            tokens = parse.parse_qs(query, keep_blank_values=True, strict_parsing=True)
            flag = tokens.pop("r", ["0"])
            values = tokens.pop("p", [])
            if tokens or flag not in (["0"], ["1"]):
                raise ValueError(encoded)
            reverse = flag == ["1"]
            if not values and reverse:
                return None, True  # the last page
            if len(values) != len(self._keys):
                raise ValueError(encoded)
            position = tuple(
                _checked(field.to_python(value))
                for (field, _), value in zip(self._keys, values, strict=True)
            )
        except (
            Base64Error,
            UnicodeError,
            ValueError,
            TypeError,
            OverflowError,
            DjangoValidationError,
        ):
            raise invalid(self.cursor_query_param, self.invalid_cursor_message) from None
        return position, reverse


def _spell(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _checked(value: Any) -> Any:
    """A position value the database can be asked about: no None, no naive date, no date
    that leaves the calendar in UTC (OverflowError)."""
    if value is None:
        raise ValueError("no value")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive date")
        value.astimezone(UTC)
    return value


def invalid(name: str, message: str) -> ValidationError:
    return ValidationError(
        f"Invalid {name}: {message}",
        errors=[{"field": name, "code": "invalid", "message": message}],
    )
