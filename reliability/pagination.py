"""Cursor pagination whose bad parameters are 400s naming the parameter.

DRF answers a cursor it cannot decode with a 404 and passes a decodable but
tampered position straight to the database (a 500 when it is not a value of
the ordering column); an invalid ``page_size`` silently becomes the default.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Field, QuerySet
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

from .exceptions import ValidationError


class CheckedCursorPagination(CursorPagination):
    page_size_query_param = "page_size"
    invalid_cursor_message = "Not a cursor this API gave: use a next or previous link as is."

    def paginate_queryset(
        self, queryset: QuerySet, request: Request, view: Any = None
    ) -> list[Any] | None:
        ordering = self.ordering if isinstance(self.ordering, str) else self.ordering[0]
        self._position_field: Field = queryset.model._meta.get_field(ordering.lstrip("-"))
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise invalid("cursor", self.invalid_cursor_message) from None
        if cursor is not None and cursor.position is not None:
            try:
                self._position_field.to_python(cursor.position)
            except (DjangoValidationError, ValueError, TypeError):
                raise invalid("cursor", self.invalid_cursor_message) from None
        return cursor

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


def invalid(name: str, message: str) -> ValidationError:
    return ValidationError(
        f"Invalid {name}: {message}",
        errors=[{"field": name, "code": "invalid", "message": message}],
    )
