"""A serializer's output for many rows, computed by its own fields minus DRF's per-field toll.

``Serializer.to_representation`` looks up every field's source through
``get_attribute`` (callable checks, ``PKOnlyObject`` checks) and every
``DateTimeField`` looks up the current time zone again; for a page of 50 jobs of
22 fields that is most of the request. ``compile_representation`` walks the
serializer's readable fields once and keeps, per field, the cheapest way to its
value: ``attrgetter`` for a plain model column, the builtin its field's
``to_representation`` would call (``str``, ``int``; nothing for JSON), the time
zone looked up once per page for ISO 8601 datetimes, and the field's own
``to_representation`` for everything else — so the output is the serializer's, as
a test checks field by field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo
from enum import Enum
from functools import partial
from operator import attrgetter, itemgetter
from typing import Any

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.utils import timezone
from rest_framework import ISO_8601, fields, serializers
from rest_framework.relations import PKOnlyObject
from rest_framework.settings import api_settings

Converter = Callable[[Any], Any]
ZONE_LOOKUP = object()  # "look the current time zone up", as opposed to None: no zone


class Representation:
    """``serializer(instance).data`` for one instance, or for a page of them."""

    def __init__(self, serializer: serializers.ModelSerializer, *, rows: bool) -> None:
        getter = itemgetter if rows else attrgetter
        self._plain: list[tuple[str, Callable[[Any], Any], Converter | None, bool]] = []
        self._general: list[fields.Field] = []
        for field in serializer._readable_fields:
            if _is_column(serializer, field):
                convert, is_datetime = _converter(field)
                self._plain.append((field.field_name, getter(field.source), convert, is_datetime))
            elif rows:
                raise TypeError(f"{field.field_name} is not a column: represent instances instead")
            else:
                self._general.append(field)
        self._names = [field.field_name for field in serializer._readable_fields]

    def __call__(self, instance: Any, zone: tzinfo | object | None = ZONE_LOOKUP) -> dict[str, Any]:
        if zone is ZONE_LOOKUP:
            zone = _current_zone()
        values: dict[str, Any] = {}
        for name, get, convert, is_datetime in self._plain:
            value = get(instance)
            if value is None or convert is None:
                values[name] = value
            elif is_datetime:
                values[name] = _iso_datetime(value, zone)
            else:
                values[name] = convert(value)
        for field in self._general:
            try:
                attribute = field.get_attribute(instance)
            except fields.SkipField:
                continue
            check = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
            values[field.field_name] = None if check is None else field.to_representation(attribute)
        return {name: values[name] for name in self._names if name in values}

    def many(self, instances: Iterable[Any]) -> list[dict[str, Any]]:
        zone = _current_zone()  # once per page: the lookup costs more than a row's dates
        return [self(instance, zone) for instance in instances]


def compile_representation(
    serializer: serializers.ModelSerializer, *, rows: bool = False
) -> Representation:
    """For model instances, or with ``rows`` for the dicts of ``values(*columns)``."""
    return Representation(serializer, rows=rows)


def _current_zone() -> tzinfo | None:
    return timezone.get_current_timezone() if settings.USE_TZ else None


def _is_column(serializer: serializers.ModelSerializer, field: fields.Field) -> bool:
    """A field that reads one concrete, non-relational column of the serializer's model."""
    if field.source == "*" or "." in field.source:
        return False
    try:
        column = serializer.Meta.model._meta.get_field(field.source)
    except FieldDoesNotExist:
        return False
    return column.concrete and not column.is_relation


def _converter(field: fields.Field) -> tuple[Converter | None, bool]:
    """How the field spells a value that is not None, without its method call where its
    ``to_representation`` is a builtin's (None: the value as is); and whether it is an ISO
    8601 datetime, which also needs the time zone."""
    kind = type(field)
    iso = getattr(field, "format", api_settings.DATETIME_FORMAT)
    if kind is fields.DateTimeField and not hasattr(field, "timezone") and iso == ISO_8601:
        return _iso_datetime, True
    if kind is fields.CharField:
        return str, False
    if kind is fields.IntegerField:
        return int, False
    if kind is fields.UUIDField and field.uuid_format == "hex_verbose":
        return str, False
    if kind is fields.JSONField and not field.binary:
        return None, False
    if kind is fields.ChoiceField:
        return partial(_choice, field.choice_strings_to_values), False
    return field.to_representation, False


def _choice(choices: dict[str, Any], value: Any) -> Any:
    # ChoiceField.to_representation, for a value that is not None
    if value == "":
        return value
    if isinstance(value, Enum) and str(value) != str(value.value):
        value = value.value
    return choices.get(str(value), value)


def _iso_datetime(value: datetime, zone: tzinfo | None) -> str | None:
    # DateTimeField.to_representation with the ISO 8601 format, the zone looked up once.
    if not value:
        return None
    if zone is not None:
        value = (
            value.astimezone(zone) if timezone.is_aware(value) else timezone.make_aware(value, zone)
        )
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
