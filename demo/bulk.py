"""How the demo seed writes its rows: binary ``COPY`` on PostgreSQL (:mod:`common.bulk`), ``bulk_create``
elsewhere, and a switch for the benchmark that measures one against the other."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connections, models, router

from common import bulk
from demo.base import BATCH_SIZE

# Devices, check-ins and battery events go through COPY on PostgreSQL; the benchmark turns this off to measure
# bulk_create against it.
COPY_ON_POSTGRESQL = True


def insert_rows(
    model: type[models.Model], columns: Sequence[str], rows: list[tuple], *, return_ids: bool = False
) -> list[int]:
    """Inserts plain rows; returns their new ids when asked.

    On PostgreSQL this is ``COPY``: building model instances and preparing every value through its field made
    ``bulk_create`` the bottleneck (3.4x slower on 100,000 devices, see bench/results/seed_demo.json). Ids are taken
    from the table's sequence first, so the rows can be written with their ids and the check-ins point at them.
    Other backends (SQLite, the embedded default) go through ``bulk_create``.
    """
    if not rows:
        return []
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql" or not COPY_ON_POSTGRESQL:
        objs = [model(**dict(zip(columns, row, strict=True))) for row in rows]
        model.objects.bulk_create(objs, batch_size=BATCH_SIZE)
        return [obj.pk for obj in objs]
    names = list(columns)
    ids: list[int] = []
    if return_ids:
        ids = bulk.reserve_ids(model, len(rows), using=connection.alias)
        names.insert(0, "id")
        rows = [(pk, *row) for pk, row in zip(ids, rows, strict=True)]
    bulk.copy_rows(model, names, rows, using=connection.alias)
    return ids
