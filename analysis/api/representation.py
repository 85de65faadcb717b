"""A serializer's output for many rows, computed by its own fields minus DRF's per-field toll.

``Serializer.to_representation`` looks up every field's source through
``get_attribute`` (callable checks, ``PKOnlyObject`` checks) and every
``DateTimeField`` looks up the current time zone again; for a page of 50 jobs of
22 fields that is most of the request. ``compile_representation`` walks the
serializer's readable fields once and keeps, per field, the cheapest way to its
value: ``attrgetter`` for a plain model column, the time zone looked up once per
row for ISO 8601 datetimes, and the field's own ``to_representation`` for
everything else — so the output is the serializer's, as a test checks field by
field.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from operator import attrgetter, itemgetter
from typing import Any

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.utils import timezone
from rest_framework import ISO_8601, fields, serializers
from rest_framework.relations import PKOnlyObject
from rest_framework.settings import api_settings

Representation = Callable[[Any], dict[str, Any]]


def compile_representation(
    serializer: serializers.ModelSerializer, *, rows: bool = False
) -> Representation:
    """For model instances, or with ``rows`` for the dicts of ``values(*columns)``."""
    plain, general = [], []
    getter = itemgetter if rows else attrgetter
    for field in serializer._readable_fields:
        if _is_column(serializer, field):
            plain.append((field.field_name, getter(field.source), _converter(field)))
        elif rows:
            raise TypeError(f"{field.field_name} is not a column: represent instances instead")
        else:
            general.append(field)
    names = [field.field_name for field in serializer._readable_fields]

    def represent(instance: Any) -> dict[str, Any]:
        zone = timezone.get_current_timezone() if settings.USE_TZ else None
        values: dict[str, Any] = {}
        for name, get, convert in plain:
            value = get(instance)
            values[name] = None if value is None else convert(value, zone)
        for field in general:
            try:
                attribute = field.get_attribute(instance)
            except fields.SkipField:
                continue
            check = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
            values[field.field_name] = None if check is None else field.to_representation(attribute)
        return {name: values[name] for name in names if name in values}

    return represent


def _is_column(serializer: serializers.ModelSerializer, field: fields.Field) -> bool:
    """A field that reads one concrete, non-relational column of the serializer's model."""
    if field.source == "*" or "." in field.source:
        return False
    try:
        column = serializer.Meta.model._meta.get_field(field.source)
    except FieldDoesNotExist:
        return False
    return column.concrete and not column.is_relation


def _converter(field: fields.Field) -> Callable[[Any, tzinfo | None], Any]:
    iso = getattr(field, "format", api_settings.DATETIME_FORMAT)
    if type(field) is fields.DateTimeField and not hasattr(field, "timezone") and iso == ISO_8601:
        return _iso_datetime
    return lambda value, _zone: field.to_representation(value)


def _iso_datetime(value: datetime, zone: tzinfo | None) -> str | None:
    # DateTimeField.to_representation with the ISO 8601 format, the zone looked up once per row.
    if not value:
        return None
    if zone is not None:
        value = (
            value.astimezone(zone) if timezone.is_aware(value) else timezone.make_aware(value, zone)
        )
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
