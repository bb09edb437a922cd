"""A batch's effect on its devices (steps 5 and 5b of :func:`devices.checkins.ingest.checkins_ingest`): each
device's new reports folded into one row of state and written in one UPDATE, the builds the catalogue lacks
recorded as observed builds, and what the MDM says of the device (Android Management API ``state``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Case, CharField, DateTimeField, F, Value, When

from common import bulk
from devices.checkins.parsers import Report
from devices.choices import ManagementState
from devices.compliance import observed
from devices.models import Device

# Device state a report may set; a value the report leaves out (None or "") keeps the last known one.
_STATE_FIELDS = (
    "android_version",
    "security_patch_level",
    "battery_level_pct",
    "battery_health_pct",
    "battery_cycle_count",
)


# --- 5. Device state -------------------------------------------------------------------------------
def fold(state: dict, report: Report, build_id: int | None) -> dict:
    """The device state after ``report``, on top of what earlier reports of the batch set.

    A report that moves the device to another build without a patch level leaves none: the patch level
    an earlier report gave was the old build's, and the engine then takes the new build's (catalogue or
    observed). The UPDATE applies the same rule against the build stored before the batch.
    """
    state = dict(state)
    state["last_check_in_at"] = report.reported_at
    # Fields a report leaves out (Headwind sends no build number) keep their last known value.
    if report.build_number:
        if report.security_patch_level is None and state.get("reported_build_number") not in (
            None,
            report.build_number,
        ):
            state.pop("security_patch_level", None)
        state["has_build"] = True
        state["current_build_id"] = build_id
        state["reported_build_number"] = report.build_number
    for field in _STATE_FIELDS:
        value = getattr(report, field)
        if value not in (None, ""):
            state[field] = value
    return state


def record_observed_builds(
    organisation_id: int, reports: Sequence[tuple[int | None, Report]], builds: dict[tuple[int, str], int]
) -> None:
    """The new reports of a known model naming a build number the catalogue has no build for (visible to the
    organisation), as observed builds: one INSERT ... ON CONFLICT DO UPDATE, none when there are none."""
    sightings = [
        observed.Sighting(
            model_id=model_id,
            build_number=report.build_number,
            reported_at=report.reported_at,
            android_version=report.android_version or "",
            security_patch_level=report.security_patch_level,
        )
        for model_id, report in reports
        if model_id is not None and report.build_number and (model_id, report.build_number) not in builds
    ]
    if sightings:
        observed.observed_builds_record(organisation_id=organisation_id, sightings=sightings)


# (column, PostgreSQL type) of the VALUES rows; SQLite takes them untyped.
_UPDATE_COLUMNS = (
    ("id", "bigint"),
    ("last_check_in_at", "timestamptz"),
    ("has_build", "boolean"),
    ("current_build_id", "bigint"),
    ("reported_build_number", "varchar"),
    ("model_id", "bigint"),
    ("reported_model", "varchar"),
    ("android_version", "varchar"),
    ("security_patch_level", "date"),
    ("battery_level_pct", "integer"),
    ("battery_health_pct", "integer"),
    ("battery_cycle_count", "integer"),
)


def update_devices(states: dict[int, tuple[dt.datetime, dict]]) -> set[int]:
    """One UPDATE of every device's reported state, rows in id order; returns the ids it changed.

    The ``last_check_in_at`` guard repeats the single-device path's: a report older than what the
    device last said (a concurrent newer batch committed in between) never regresses it.
    """
    if not states:
        return set()
    device_field = Device._meta.get_field
    postgres = connection.vendor == "postgresql"
    rows = []
    for device_id in sorted(states):
        _, state = states[device_id]
        row: list[Any] = []
        for column, _ in _UPDATE_COLUMNS:
            if column == "id":
                value = device_id
            elif column == "has_build":
                value = bool(state.get("has_build"))
            elif column == "current_build_id":
                value = state.get("current_build_id")
            else:
                value = state.get(column)
                if value is not None and isinstance(value, dt.date):
                    # ISO 8601 for the JSON document; as the ORM formats them for SQLite.
                    value = value.isoformat() if postgres else device_field(column).get_db_prep_save(value, connection)
            row.append(value)
        rows.append(row)
    names = ", ".join(column for column, _ in _UPDATE_COLUMNS)
    if postgres:
        # One JSON document, as for the inserts; the rows keep their id order.
        columns = [column for column, _ in _UPDATE_COLUMNS]
        params: list[Any] = [bulk.dumps([dict(zip(columns, row, strict=True)) for row in rows])]
        record = ", ".join(f"{column} {pg_type}" for column, pg_type in _UPDATE_COLUMNS)
        values = f"SELECT {names} FROM json_to_recordset(%s::json) AS r({record})"
    else:
        params = [value for row in rows for value in row]
        placeholder = "(" + ", ".join(["%s"] * len(_UPDATE_COLUMNS)) + ")"
        values = f"VALUES {', '.join([placeholder] * len(rows))}"
    table = Device._meta.db_table
    # A build change without a patch level clears the old build's (see _fold); otherwise a value left out
    # keeps the stored one.
    stored = f"{table}.reported_build_number"
    build_changed = f"v.has_build AND {stored} <> '' AND {stored} <> v.reported_build_number"
    keep = f"security_patch_level = CASE WHEN v.security_patch_level IS NULL AND {build_changed} THEN NULL "
    keep += f"ELSE COALESCE(v.security_patch_level, {table}.security_patch_level) END, "
    keep += ", ".join(
        f"{column} = COALESCE(v.{column}, {table}.{column})"
        for column in (
            "android_version",
            "battery_level_pct",
            "battery_health_pct",
            "battery_cycle_count",
        )
    )
    sql = f"""
        WITH v({names}) AS ({values})
        UPDATE {table}
           SET last_check_in_at = v.last_check_in_at,
               current_build_id = CASE WHEN v.has_build THEN v.current_build_id ELSE {table}.current_build_id END,
               reported_build_number = CASE WHEN v.has_build THEN v.reported_build_number
                                            ELSE {table}.reported_build_number END,
               model_id = COALESCE({table}.model_id, v.model_id),
               reported_model = COALESCE(v.reported_model, {table}.reported_model),
               {keep}
          FROM v
         WHERE {table}.id = v.id
           AND ({table}.last_check_in_at IS NULL OR {table}.last_check_in_at <= v.last_check_in_at)
        RETURNING {table}.id
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


# --- 5b. What the MDM says of the device (Android Management API "state") --------------------------
_DELETED = "deleted"
_STATE_OF_REPORT = {
    "active": ManagementState.ACTIVE,
    "lost": ManagementState.LOST,
    "disabled": ManagementState.DISABLED,
}


def reports_deletion(report: Report, device: dict, deleted: dict[int, dt.datetime]) -> bool:
    """A report saying the device was deleted retires it (whatever its age: deletion is final) and sets no
    state of the device; its check-in is kept in the history."""
    if report.management_state != _DELETED:
        return False
    deleted.setdefault(device["id"], report.reported_at)
    return True


def with_management_state(state: dict, report: Report) -> dict:
    if report.management_state in _STATE_OF_REPORT:
        state = {**state, "management_state": _STATE_OF_REPORT[report.management_state]}
    return state


def update_management_states(
    devices: dict[int, dict],
    newest: dict[int, tuple[dt.datetime, dict]],
    applied: set[int],
    deleted: dict[int, dt.datetime],
) -> None:
    """One UPDATE, only when some device of the batch changes state: LOST and DISABLED are recorded with the
    time of the report that said so, ACTIVE clears them, DELETED retires the device (a retired device keeps
    its first date). State changes are rare, so a CASE per device stays small."""
    changed = {
        device_id: (newest[device_id][1]["management_state"], newest[device_id][0])
        for device_id in sorted(applied)
        if newest[device_id][1].get("management_state", devices[device_id]["management_state"])
        != devices[device_id]["management_state"]
    }
    if not changed and not deleted:
        return
    Device.objects.filter(pk__in=sorted({*deleted, *changed})).update(
        management_state=Case(
            *(When(pk=device_id, then=Value(state)) for device_id, (state, _) in changed.items()),
            default=F("management_state"),
            output_field=CharField(),
        ),
        management_state_since=Case(
            *(
                When(pk=device_id, then=Value(None if state == ManagementState.ACTIVE else at))
                for device_id, (state, at) in changed.items()
            ),
            default=F("management_state_since"),
            output_field=DateTimeField(),
        ),
        retired_at=Case(
            *(When(pk=device_id, retired_at__isnull=True, then=Value(at)) for device_id, at in deleted.items()),
            default=F("retired_at"),
            output_field=DateTimeField(),
        ),
    )
