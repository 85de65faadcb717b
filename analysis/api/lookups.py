"""Lookups of one row whose SQL is compiled once per connection: the API's hottest reads.

Building and compiling a queryset costs Django more than running it: of the 2.8 ms
the job status endpoint spent on its one query (bench/api_load.py, PostgreSQL),
2 ms went to ``filter``/``only`` clones and the SQL compiler. A ``PreparedLookup``
builds its queryset once per database connection, with marker values in place of
the arguments, and keeps the SQL, where the markers sit among its parameters, and
the columns' converters. A call then only binds, executes and converts, and
returns the instance the queryset would have returned — with the same columns
loaded, the rest deferred.
"""

from __future__ import annotations

import uuid
import weakref
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.db.models.sql.compiler import SQLCompiler

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: list[Any]
    slots: dict[str, tuple[int, Field]]  # argument -> (index among params, field)
    attnames: list[str]
    compiler: SQLCompiler
    converters: dict[int, Any]


class PreparedLookup(Generic[M]):
    """``model.objects.filter(**arguments).only(*columns).first()`` (no ordering), compiled once."""

    def __init__(self, model: type[M], columns: list[str], arguments: tuple[str, ...]) -> None:
        self.model = model
        self.columns = columns
        self.arguments = arguments
        self._compiled: weakref.WeakKeyDictionary[BaseDatabaseWrapper, _Compiled] = (
            weakref.WeakKeyDictionary()
        )

    def first(self, **values: Any) -> M | None:
        connection = connections[router.db_for_read(self.model)]
        compiled = self._compiled.get(connection) or self._compile(connection)
        params = list(compiled.params)
        for name, value in values.items():
            index, field = compiled.slots[name]
            params[index] = field.get_db_prep_value(value, connection, prepared=False)
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        if compiled.converters:
            (row,) = compiled.compiler.apply_converters([row], compiled.converters)
        return self.model.from_db(connection.alias, compiled.attnames, row)

    def _compile(self, connection: BaseDatabaseWrapper) -> _Compiled:
        markers = {name: self._marker(name, index) for index, name in enumerate(self.arguments)}
        queryset = self.model._default_manager.using(connection.alias)
        queryset = queryset.filter(**markers).only(*self.columns).order_by()[:1]
        compiler = queryset.query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        params = list(params)
        slots = {}
        for name, marker in markers.items():
            field = self._field(name)
            slots[name] = (params.index(field.get_db_prep_value(marker, connection)), field)
        columns = [column for column, _, _ in compiler.select]
        compiled = _Compiled(
            sql,
            params,
            slots,
            [column.target.attname for column in columns],
            compiler,
            compiler.get_converters(columns),
        )
        self._compiled[connection] = compiled
        return compiled

    def _field(self, argument: str) -> Field:
        meta = self.model._meta
        return meta.pk if argument == "pk" else meta.get_field(argument.removesuffix("_id"))

    def _marker(self, argument: str, index: int) -> Any:
        """A value no real argument takes, of the argument's type, to find it among params."""
        field = self._field(argument)
        internal = field.target_field.get_internal_type() if field.is_relation else None
        kind = internal or field.get_internal_type()
        if kind == "UUIDField":
            return uuid.UUID(int=0x5EED_0000_0000_4000_8000_0000_0000_0000 + index)
        if kind in ("AutoField", "BigAutoField", "IntegerField", "BigIntegerField"):
            return -7_319_000_000 - index
        raise TypeError(f"PreparedLookup cannot mark a {kind} argument ({argument})")
