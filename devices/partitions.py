"""The check-in history as monthly partitions on PostgreSQL: the SQL that creates, lists and expires them.

On PostgreSQL ``devices_checkin`` is declaratively partitioned by RANGE (reported_at): one partition per
calendar month (UTC), named ``devices_checkin_pYYYY_MM``, plus ``devices_checkin_default`` for whatever no
month covers (a report from a clock years ahead, a late report of a month retention already dropped, the
build transitions retention keeps). Django never sees the partitions: its model, its migrations state and
its queries address the parent table, and PostgreSQL routes rows and prunes partitions by ``reported_at``.
On SQLite the table stays a plain table and every function here is a no-op.

Why: with 100 million check-ins, retention deleting rows one batch at a time rewrites and vacuums the
table every night; dropping a month is a catalogue operation. And a query bounded on ``reported_at`` (a
device's timeline, time-to-patch) reads only the months it asks for.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

logger = logging.getLogger(__name__)

TABLE = "devices_checkin"
DEFAULT_PARTITION = f"{TABLE}_default"
# How many months after the current one always exist. The daily beat task keeps this many ahead, so a
# month's partition exists weeks before its first report; a missed run or three changes nothing.
MONTHS_AHEAD = 3
# With retention disabled (CHECKIN_RETENTION_DAYS=0), how far back the migration partitions existing rows;
# anything older lands in the default partition.
MAX_MONTHS_BACK = 120


@dataclasses.dataclass(frozen=True)
class Partition:
    """One monthly partition: its table name and the half-open range [start, end) of reported_at it holds."""

    name: str
    start: dt.datetime
    end: dt.datetime


def month_start(moment: dt.datetime | dt.date) -> dt.datetime:
    """The first instant (UTC) of the month containing ``moment``."""
    if isinstance(moment, dt.datetime):
        moment = moment.astimezone(dt.UTC) if timezone.is_aware(moment) else moment.replace(tzinfo=dt.UTC)
    return dt.datetime(moment.year, moment.month, 1, tzinfo=dt.UTC)


def add_months(start: dt.datetime, months: int) -> dt.datetime:
    """``start`` (a month's first instant) moved by ``months`` months, forwards or backwards."""
    index = start.year * 12 + start.month - 1 + months
    return dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.UTC)


def partition_name(start: dt.datetime) -> str:
    return f"{TABLE}_p{start.year:04d}_{start.month:02d}"


def is_partitioned(using: BaseDatabaseWrapper | None = None) -> bool:
    """True when the check-in table is a partitioned table (PostgreSQL after migration devices 0009)."""
    using = using or connection
    if using.vendor != "postgresql":
        return False
    with using.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def monthly_partitions(using: BaseDatabaseWrapper | None = None) -> list[Partition]:
    """The monthly partitions attached now, oldest first (the default partition is not one of them)."""
    using = using or connection
    with using.cursor() as cursor:
        # The bounds come back as text in the session's time zone: Django sets it to UTC on PostgreSQL.
        cursor.execute(
            """SELECT child.relname, pg_get_expr(child.relpartbound, child.oid)
                 FROM pg_inherits JOIN pg_class child ON child.oid = pg_inherits.inhrelid
                WHERE pg_inherits.inhparent = to_regclass(%s)""",
            [TABLE],
        )
        rows = cursor.fetchall()
    partitions = []
    for name, bound in rows:
        if bound == "DEFAULT":
            continue
        # FOR VALUES FROM ('2026-11-01 00:00:00+00') TO ('2026-12-01 00:00:00+00')
        start_text, end_text = bound.split("'")[1], bound.split("'")[3]
        partitions.append(Partition(name, dt.datetime.fromisoformat(start_text), dt.datetime.fromisoformat(end_text)))
    return sorted(partitions, key=lambda partition: partition.start)


def first_month_to_keep(now: dt.datetime) -> dt.datetime:
    """The oldest month that must have a partition: the one holding the retention cutoff (or this month,
    with retention disabled). Older months are retention's to drop, so the ahead task never recreates them."""
    days = settings.CHECKIN_RETENTION_DAYS
    if days <= 0:
        return month_start(now)
    return month_start(now - dt.timedelta(days=days))


def ensure_partitions(*, first: dt.datetime, last: dt.datetime, using: BaseDatabaseWrapper | None = None) -> list[str]:
    """Creates the monthly partitions from the month of ``first`` to the month of ``last`` included that do
    not exist yet; returns the names created. Idempotent, and a no-op unless the table is partitioned.

    A month whose reports already sit in the default partition (reported ahead of any partition) gets its
    table created apart, those rows moved into it, then attached: PostgreSQL refuses to create a partition
    over rows the default partition holds.
    """
    using = using or connection
    if not is_partitioned(using):
        return []
    existing = {partition.name for partition in monthly_partitions(using)}
    created = []
    month, last_month = month_start(first), month_start(last)
    while month <= last_month:
        name = partition_name(month)
        if name not in existing:
            _create_partition(using, name, month, add_months(month, 1))
            created.append(name)
        month = add_months(month, 1)
    if created:
        logger.info("check-in partitions created: %s", ", ".join(created))
    return created


def _create_partition(using: BaseDatabaseWrapper, name: str, start: dt.datetime, end: dt.datetime) -> None:
    # Both ways take a brief exclusive lock on the parent and read the default partition (no index leads with
    # reported_at there): once a month per new partition, ahead of its first report.
    with transaction.atomic(using=using.alias), using.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION} WHERE reported_at >= %s AND reported_at < %s)",
            [start, end],
        )
        if not cursor.fetchone()[0]:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {TABLE} FOR VALUES FROM (%s) TO (%s)", [start, end]
            )
            return
        cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        cursor.execute(
            f"""WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE reported_at >= %s AND reported_at < %s
                               RETURNING *)
                INSERT INTO {name} SELECT * FROM moved""",
            [start, end],
        )
        cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", [start, end])


def ensure_ahead(*, now: dt.datetime | None = None, using: BaseDatabaseWrapper | None = None) -> list[str]:
    """The daily job: every month from the retention cutoff's to ``MONTHS_AHEAD`` after this one exists."""
    now = now or timezone.now()
    return ensure_partitions(
        first=first_month_to_keep(now), last=add_months(month_start(now), MONTHS_AHEAD), using=using
    )


def drop_expired_partitions(*, older_than: dt.datetime, using: BaseDatabaseWrapper | None = None) -> int:
    """Drops every monthly partition whose whole month is before ``older_than``, keeping its build
    transitions; returns how many check-ins went. The month holding ``older_than`` stays whole until it
    has entirely expired (retention is then up to a month late for it, never early).

    Per partition, oldest first, in one transaction:
    1. ``LOCK`` the partition against writes (only late reports of that month wait; other months' ingest
       goes on), count it, and copy its transitions into a temporary table: its rows whose device's
       previous check-in (by reported_at, then id, over the whole table: the older months' transitions
       already sit in the default partition) reported another build number, or that are the first.
    2. ``DETACH`` it (a short exclusive lock on the parent), insert the transitions back through the
       parent, where they land in the default partition since no partition covers that month any more,
       and ``DROP`` it. The timeline keeps every build change; StatusChange is never touched.
    A late report of that very month arriving in between may deadlock with step 2; PostgreSQL then aborts
    one of the two, and both retry (ingest at once, this task with its backoff) and find nothing in the way.
    """
    using = using or connection
    if not is_partitioned(using):
        return 0
    deleted = 0
    for partition in monthly_partitions(using):
        if partition.end > older_than:
            break
        deleted += _drop_partition_keeping_transitions(using, partition)
    return deleted


def _drop_partition_keeping_transitions(using: BaseDatabaseWrapper, partition: Partition) -> int:
    name = partition.name
    with transaction.atomic(using=using.alias), using.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {name} IN SHARE MODE")
        cursor.execute(f"SELECT count(*) FROM {name}")
        rows = cursor.fetchone()[0]
        cursor.execute(
            f"""CREATE TEMPORARY TABLE kept_transitions AS
                SELECT * FROM (
                    SELECT *, LAG(build_number) OVER (PARTITION BY device_id ORDER BY reported_at, id) AS previous
                      FROM (SELECT *, true AS expiring FROM {name}
                            UNION ALL
                            SELECT *, false FROM {TABLE}
                             WHERE reported_at < %s AND device_id IN (SELECT device_id FROM {name})) candidates
                ) ordered
                WHERE expiring AND previous IS DISTINCT FROM build_number""",
            [partition.start],
        )
        cursor.execute("ALTER TABLE kept_transitions DROP COLUMN expiring, DROP COLUMN previous")
        # Foreign keys are checked at commit (DEFERRABLE INITIALLY DEFERRED): rows written earlier in this same
        # transaction (a test's) leave checks pending on the partition, and PostgreSQL refuses to drop it then.
        using.check_constraints()
        cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {name}")
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM kept_transitions")
        kept = cursor.rowcount
        # Dropped here, not left to ON COMMIT: inside an outer transaction the commit is not ours.
        cursor.execute(f"DROP TABLE {name}, kept_transitions")
    logger.info("check-in partition %s dropped: %d check-ins, %d build transitions kept", name, rows, kept)
    return rows - kept


def row_prune_cutoff(*, older_than: dt.datetime, using: BaseDatabaseWrapper | None = None) -> dt.datetime:
    """Where the row-by-row retention stops once whole months are dropped: the start of the monthly
    partition holding ``older_than`` (left whole for next month), else ``older_than`` itself. Below it only
    the default partition holds rows, so the batch delete reads that one alone."""
    using = using or connection
    if not is_partitioned(using):
        return older_than
    for partition in monthly_partitions(using):
        if partition.start <= older_than < partition.end:
            return partition.start
    return older_than
