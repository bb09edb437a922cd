"""The aggregates the dashboard reads instead of the devices table: daily status snapshots (the 90-day
trend) and the tallies (counts per status, battery, patch age, model), rewritten after each sweep."""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction
from django.utils import timezone

from common import bulk
from devices.choices import ComplianceStatus
from devices.models import ComplianceSnapshot, Device, DeviceTally


@transaction.atomic
def snapshot_statuses(*, today: dt.date | None = None) -> int:
    """Records today's device count per (organisation, status), replacing today's earlier figures.

    The dashboard's 90-day trend reads these few rows per day instead of replaying the status history.
    Two statements whatever the fleet size; returns the number of rows written.
    """
    today = today or timezone.now().date()
    table = ComplianceSnapshot._meta.db_table
    day = today.isoformat() if connection.vendor == "sqlite" else today
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE day = %s", [day])
        cursor.execute(
            f"""INSERT INTO {table} (organisation_id, day, status, count)
                SELECT organisation_id, %s, compliance_status, COUNT(*)
                  FROM {Device._meta.db_table}
                 WHERE retired_at IS NULL
                 GROUP BY organisation_id, compliance_status""",
            [day],
        )
        return cursor.rowcount


# Patch age buckets of the dashboard: label and upper bound in days (inclusive); None is "older".
PATCH_BUCKETS = (("0-30", 30), ("31-60", 60), ("61-90", 90), ("91-180", 180), ("180+", None))


def _tally_select(*, organisation_id: int | None, now: dt.datetime) -> tuple[str, dict]:
    """The GROUP BY behind the tallies: one row per (organisation, model, status, battery, patch age,
    on target, waived) of the active devices, with its count and ``now``."""
    today = now.date()
    sqlite = connection.vendor == "sqlite"
    params: dict = {"now": connection.ops.adapt_datetimefield_value(now) if sqlite else now}
    whens = []
    for index, (label, upper) in enumerate(PATCH_BUCKETS):
        if upper is None:
            whens.append(f"ELSE '{label}'")
        else:
            cutoff = today - dt.timedelta(days=upper)
            params[f"bucket_{index}"] = cutoff.isoformat() if sqlite else cutoff
            whens.append(f"WHEN d.security_patch_level >= %(bucket_{index})s THEN '{label}'")
    bucket = f"CASE WHEN d.security_patch_level IS NULL THEN 'unknown' {' '.join(whens)} END"
    on_target = (
        "CASE WHEN d.current_build_id IS NOT NULL AND d.latest_build_id IS NOT NULL AND d.builds_behind = 0"
        f" AND d.compliance_status <> '{ComplianceStatus.UNKNOWN}' THEN %(true)s ELSE %(false)s END"
    )
    params |= {"true": True, "false": False}
    scope = ""
    if organisation_id is not None:
        params["organisation_id"] = organisation_id
        scope = " AND d.organisation_id = %(organisation_id)s"
    select = f"""SELECT d.organisation_id, d.model_id, d.compliance_status, d.battery_status, {bucket},
                        {on_target}, d.is_waived, COUNT(*), %(now)s
                   FROM {Device._meta.db_table} d
                  WHERE d.retired_at IS NULL{scope}
                  GROUP BY d.organisation_id, d.model_id, d.compliance_status, d.battery_status, {bucket},
                           {on_target}, d.is_waived"""
    return select, params


_TALLY_COLUMNS = (
    "organisation_id",
    "model_id",
    "compliance_status",
    "battery_status",
    "patch_bucket",
    "on_target",
    "is_waived",
    "count",
    "computed_at",
)


@transaction.atomic
def tally_devices(*, organisation_id: int | None = None, now: dt.datetime | None = None) -> int:
    """Rewrites the dashboard's tallies (all organisations, or one): one GROUP BY over the active devices.

    Readers see the previous tallies until this transaction commits, never a half-written set.
    """
    select, params = _tally_select(organisation_id=organisation_id, now=now or timezone.now())
    table = DeviceTally._meta.db_table
    delete_scope = " WHERE organisation_id = %(organisation_id)s" if organisation_id is not None else ""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Two rewrites at once (two sweeps finishing together) would each delete only the rows they could
            # see and both insert: one rewrite at a time; readers are not blocked (SQLite: IMMEDIATE already).
            cursor.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(f"DELETE FROM {table}{delete_scope}", params if delete_scope else None)
        cursor.execute(f"INSERT INTO {table} ({', '.join(_TALLY_COLUMNS)}) {select}", params)
        return cursor.rowcount


def devices_tallied(*, organisation_id: int, now: dt.datetime | None = None) -> list[DeviceTally]:
    """The tallies of one organisation as :func:`tally_devices` would write them, computed and not stored
    (the dashboard of an organisation the sweep has not tallied yet: a read never writes)."""
    select, params = _tally_select(organisation_id=organisation_id, now=now or timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(select, params)
        rows = bulk.converted(DeviceTally, _TALLY_COLUMNS, cursor.fetchall())
    return [DeviceTally(**row) for row in rows]
