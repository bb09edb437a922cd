"""The demo seed's hand-written bulk SQL, all of it, behind a few plain functions.

Kept in one place so that it can give way to the shared helpers of ``common/bulk.py`` without the generators
noticing: ``insert_rows`` is what the seed calls, ``reserve_ids`` and ``copy_rows`` are its PostgreSQL path, and
``analyze_tables`` is what ``manage.py seed_demo`` runs after a seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import DEFAULT_DB_ALIAS, connections, models, router
from psycopg import sql

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
        ids = reserve_ids(model, len(rows), using=connection.alias)
        names.insert(0, "id")
        rows = [(pk, *row) for pk, row in zip(ids, rows, strict=True)]
    copy_rows(model, names, rows, using=connection.alias)
    return ids


def reserve_ids(model: type[models.Model], count: int, *, using: str) -> list[int]:
    """``count`` new ids from the sequence of ``model``'s table (PostgreSQL), for rows about to be copied in."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [model._meta.db_table, count],
        )
        return [pk for (pk,) in cursor.fetchall()]


def copy_rows(model: type[models.Model], columns: Sequence[str], rows: Iterable[tuple], *, using: str) -> None:
    """Writes ``rows`` (tuples in the order of ``columns``) into ``model``'s table with a binary ``COPY``
    (PostgreSQL). Columns left out get their model default, as ``bulk_create`` would give them."""
    connection = connections[using]
    table = model._meta.db_table
    fields = {f.column: f for f in model._meta.concrete_fields}
    defaults = {
        column: f.get_default()
        for column, f in fields.items()
        if column not in columns and not f.primary_key and (f.has_default() or not f.null)
    }
    names = [*columns, *defaults]
    extra = tuple(defaults.values())
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    # Binary COPY needs each column's type: "varchar(64)" is a varchar, a foreign key its target's key type.
    types = [
        (field.rel_db_type(connection) if field.is_relation else field.db_type(connection)).split("(")[0]
        for field in (fields[name] for name in names)
    ]
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row + extra)


def analyze_tables(tables: Sequence[type[models.Model]], *, using: str = DEFAULT_DB_ALIAS) -> None:
    """``ANALYZE`` the tables of ``tables`` on PostgreSQL (nothing elsewhere): fresh planner statistics for rows
    just copied in, which autovacuum would otherwise gather later, if it is on."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE " + ", ".join(model._meta.db_table for model in tables))
