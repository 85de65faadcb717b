"""Inserting a row that holds a large text or JSON value, with its values bound server-side.

Django binds parameters client-side on psycopg 3: the driver quotes every value into the SQL
text in Python, which for a 120 MB string takes longer than the server takes to store it (3.0 s
against 1.1 s on the benchmark host). :func:`create_large` sends the same ``INSERT`` with the
values bound by the server; on any other database it is ``create``. The statement goes past
Django's cursor wrapper, so it is not in ``connection.queries``, the execute wrappers or a
per-query trace span.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import connections, router
from django.db.models import Model, signals
from django.db.models.sql import InsertQuery

M = TypeVar("M", bound=Model)


def create_large(model: type[M], **values: Any) -> M:
    """``model.objects.create(**values)``, signals included, for a model without parents whose
    primary key has a default computed in Python (a UUID, not a serial)."""
    instance = model(**values)
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        instance.save(force_insert=True, using=connection.alias)
        return instance
    import psycopg  # the backend's driver: present whenever the vendor is PostgreSQL

    if model._meta.parents or instance.pk is None:
        raise TypeError(f"create_large needs a {model.__name__} without parents, with its key")
    alias = connection.alias
    signals.pre_save.send(model, instance=instance, raw=False, using=alias, update_fields=None)
    query = InsertQuery(model)
    query.insert_values(model._meta.local_concrete_fields, [instance])
    # What Django's own cursor() does first: the health check, the connection, no broken
    # transaction.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors:
        for sql, params in query.get_compiler(connection=connection).as_sql():
            with psycopg.Cursor(connection.connection) as cursor:
                cursor.execute(sql, params)
    instance._state.adding = False
    instance._state.db = alias
    signals.post_save.send(
        model, instance=instance, created=True, update_fields=None, raw=False, using=alias
    )
    return instance
