"""Django's database cache, with an ``incr`` that concurrent processes cannot lose.

The stock ``DatabaseCache.incr`` reads the value and writes it back; two
processes incrementing at once both write the same number. Circuit breakers
count failures with ``incr``, so here the row is locked for the read-modify-
write (``SELECT … FOR UPDATE``; on SQLite the ``BEGIN IMMEDIATE`` of our
settings serialises writers). Redis' ``incr`` is atomic already.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.db import DatabaseCache
from django.db import connections, router, transaction


class AtomicDatabaseCache(DatabaseCache):
    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        with transaction.atomic(using=db):
            if connection.features.has_select_for_update:
                table = connection.ops.quote_name(self._table)
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"SELECT cache_key FROM {table} WHERE cache_key = %s FOR UPDATE",  # noqa: S608 - quoted table name
                        [self.make_and_validate_key(key, version=version)],
                    )
            return super().incr(key, delta, version)
