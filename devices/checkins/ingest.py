"""Set-based check-in ingestion: a batch of up to 1,000 reports in a constant number of SQL statements.

The one path that writes check-ins: a single API check-in, a bulk one, an Android Management API push
and a Headwind report are all a batch (of one, or more), called through
:func:`devices.checkins.services.checkins_ingest_retrying`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gc
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, CharField, DateTimeField, F, Value, When
from django.utils import timezone
from django.utils.translation import gettext

from common import bulk
from devices.checkins.parsers import DeviceIdentity, Report
from devices.choices import ComplianceStatus, ManagementState
from devices.compliance import engine as compliance
from devices.compliance import observed
from devices.models import CheckIn, Device
from updates.models import DeviceModel, ModelNames, OSBuild

MAX_BATCH = 1000


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pauses CPython's cyclic garbage collector while a batch is read, stored and answered.

    A batch of 1,000 reports allocates some 50,000 dicts and lists (the parsed body, the reports, the
    rows, the results) that all die with the request, freed by reference counting. With the collector
    on, they set off dozens of collections, survive into the old generation and then trigger full
    collections of the worker's whole heap: about a sixth of a batch's Python time. Nothing here makes
    reference cycles; any that something else makes meanwhile is collected once the collector resumes.
    Whoever found the collector on turns it back on, so nesting (or threads) never leave it off. Also a
    decorator (``@collector_paused()``).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class ItemStatus:
    CREATED = "created"
    DUPLICATE = "duplicate"
    ERROR = "error"


@dataclasses.dataclass
class ItemResult:
    """What became of one report of a batch."""

    status: str
    device_id: int | None = None
    errors: dict[str, list[str]] | None = None
    # What was dropped or doubted but did not stop the report (a junk secondary IMEI, an unknown model).
    warnings: dict[str, list[str]] | None = None
    compliance_status: str | None = None
    enrolled: bool = False
    applied: bool = False  # False for an older report: kept in history, device state untouched


@dataclasses.dataclass(frozen=True)
class Submission:
    identity: DeviceIdentity
    report: Report


# Device state a report may set; a value the report leaves out (None or "") keeps the last known one.
_STATE_FIELDS = (
    "android_version",
    "security_patch_level",
    "battery_level_pct",
    "battery_health_pct",
    "battery_cycle_count",
)


@transaction.atomic
def checkins_ingest(
    *,
    organisation_id: int,
    submissions: Sequence[Submission],
    can_enrol: bool,
    now: dt.datetime | None = None,
) -> list[ItemResult]:
    """Records a batch of reports for one organisation; returns one result per submission, in order.

    1. Resolve every device named in the batch by serial or IMEI (one SELECT, locking the rows in id
       order so concurrent batches queue instead of deadlocking).
    2. Enrol the unknown ones when allowed (one INSERT, serials in order; a concurrent enrolment of the
       same serial is absorbed by ON CONFLICT), the model resolved by name in one SELECT.
    3. Resolve build numbers against the catalogue (one SELECT): the organisation's private build first.
    4. Collapse reports repeated inside the batch (same device and reported_at), then insert the
       check-ins with INSERT ... ON CONFLICT DO NOTHING RETURNING: what comes back is what is new.
    5. Fold each device's new reports that are not older than its last check-in into one row of state,
       and write them with one UPDATE ... FROM (the rows) guarded by ``last_check_in_at``; then record
       the new reports of builds the catalogue lacks as observed builds (one upsert, only if there are any).
    6. One compliance recompute over every device of the batch, then one SELECT of their statuses.
    """
    now = now or timezone.now()
    results: list[ItemResult | None] = [None] * len(submissions)
    if not submissions:
        return []
    if len(submissions) > MAX_BATCH:
        raise ValueError(f"a batch holds at most {MAX_BATCH} reports")

    devices = _resolve_devices(organisation_id, [s.identity for s in submissions])
    device_of: list[dict | None] = []
    for index, submission in enumerate(submissions):
        device, error = _match(devices, submission.identity)
        if error:
            results[index] = ItemResult(status=ItemStatus.ERROR, errors=error)
        device_of.append(device)

    # 2. Enrolment of the devices nobody knows.
    missing = [i for i, s in enumerate(submissions) if results[i] is None and device_of[i] is None]
    enrolled_ids: set[int] = set()
    names = _model_names(submissions, device_of, enrolling=bool(missing and can_enrol))
    if missing and can_enrol:
        enrolled = _enrol(organisation_id, [submissions[i].identity for i in missing], devices, names, now=now)
        for i in missing:
            identity = submissions[i].identity
            device = enrolled.get(identity.serial) if identity.serial else None
            if device is None:
                results[i] = ItemResult(
                    status=ItemStatus.ERROR,
                    errors={"serial": [gettext("A serial number is needed to enrol a new device.")]},
                )
            else:
                device_of[i] = device
                enrolled_ids.add(device["id"])
    else:
        for i in missing:
            results[i] = ItemResult(
                status=ItemStatus.ERROR,
                errors={
                    "serial": [
                        gettext(
                            "No device of this organisation has this serial number or IMEI, "
                            "and this token may not enrol devices."
                        )
                    ]
                },
            )

    # 3. Builds (of the model a device without one now reports, if the catalogue knows it).
    valid = [i for i in range(len(submissions)) if results[i] is None]
    warnings = _resolve_models(names, [(i, submissions[i].identity, device_of[i]) for i in valid])
    builds = _resolve_builds(
        organisation_id,
        {(device_of[i]["model_id"], submissions[i].report.build_number) for i in valid},
    )

    # 4. Check-ins: first occurrence of (device, reported_at, source) wins; the rest are duplicates.
    first_of: dict[tuple, int] = {}
    for i in valid:
        report = submissions[i].report
        first_of.setdefault((device_of[i]["id"], report.reported_at, report.source), i)
    to_insert = sorted(first_of.items(), key=lambda item: (item[0][0], item[0][1]))
    created_positions = _insert_check_ins(
        [
            (
                submissions[i].report,
                device_of[i]["id"],
                builds.get((device_of[i]["model_id"], submissions[i].report.build_number)),
            )
            for _, i in to_insert
        ],
        now=now,
    )
    created_items = {to_insert[n][1] for n in created_positions}

    # 5. Device state from the reports that are new and not older than what the device last said.
    newest: dict[int, tuple[dt.datetime, dict]] = {}
    applied_items: set[int] = set()
    deleted: dict[int, dt.datetime] = {}
    for i in sorted(created_items, key=lambda i: submissions[i].report.reported_at):
        device, report = device_of[i], submissions[i].report
        if _reports_deletion(report, device, deleted):
            continue
        last = device["last_check_in_at"]
        if last is not None and report.reported_at < last:
            continue
        applied_items.add(i)
        _, state = newest.get(device["id"], (None, {}))
        state = _fold(state, report, builds.get((device["model_id"], report.build_number)))
        if submissions[i].identity.model_names:
            state["model_id"] = device["model_id"]
            state["reported_model"] = _reported_model(submissions[i].identity)
        newest[device["id"]] = (report.reported_at, _with_management_state(state, report))
    applied_devices = _update_devices(newest)
    applied_items = {i for i in applied_items if device_of[i]["id"] in applied_devices}
    _update_management_states({device_of[i]["id"]: device_of[i] for i in valid}, newest, applied_devices, deleted)

    # 5b. Builds the catalogue lacks, recorded as the organisation's observed builds (one upsert).
    _record_observed_builds(
        organisation_id, [(device_of[i]["model_id"], submissions[i].report) for i in created_items], builds
    )

    # 6. Compliance.
    touched = sorted({device_of[i]["id"] for i in valid})
    compliance.recompute(device_ids=touched, now=now, reason="check-in")
    id_in, id_params = bulk.sql_in("id", touched)
    statuses = {
        row["id"]: row["compliance_status"]
        for row in bulk.select_rows(Device, ("id", "compliance_status"), id_in, id_params)
    }

    for i in valid:
        device_id = device_of[i]["id"]
        results[i] = ItemResult(
            status=ItemStatus.CREATED if i in created_items else ItemStatus.DUPLICATE,
            device_id=device_id,
            compliance_status=statuses.get(device_id, ComplianceStatus.UNKNOWN),
            enrolled=device_id in enrolled_ids,
            applied=i in applied_items,
            warnings=warnings.get(i),
        )
    return results  # type: ignore[return-value]


# --- 1. Devices ------------------------------------------------------------------------------------
_DEVICE_VALUES = ("id", "serial", "imei", "model_id", "last_check_in_at", "management_state")


def _resolve_devices(organisation_id: int, identities: Sequence[DeviceIdentity]) -> dict[str, dict[str, dict]]:
    serials = sorted({i.serial for i in identities if i.serial})
    imeis = sorted({i.imei for i in identities if i.imei})
    found: dict[str, dict[str, dict]] = {"serial": {}, "imei": {}}
    if not serials and not imeis:
        return found
    clauses, params = [], []
    for column, values in (("serial", serials), ("imei", imeis)):
        if values:
            sql, value_params = bulk.sql_in(column, values)
            clauses.append(sql)
            params.extend(value_params)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    rows = bulk.select_rows(
        Device,
        _DEVICE_VALUES,
        f"organisation_id = %s AND ({' OR '.join(clauses)}) ORDER BY id{lock}",
        [organisation_id, *params],
    )
    for row in rows:
        found["serial"][row["serial"]] = row
        if row["imei"]:
            found["imei"][row["imei"]] = row
    return found


def _match(devices: dict[str, dict[str, dict]], identity: DeviceIdentity) -> tuple[dict | None, dict | None]:
    by_serial = devices["serial"].get(identity.serial) if identity.serial else None
    by_imei = devices["imei"].get(identity.imei) if identity.imei else None
    if by_imei is not None and identity.serial and (by_serial is None or by_serial["id"] != by_imei["id"]):
        # A phone's serial and IMEI do not change: two devices claimed by one report is a mistake upstream.
        return None, {
            "imei": [
                gettext("This IMEI belongs to another device of this organisation (serial %(serial)s).")
                % {"serial": by_imei["serial"]}
            ]
        }
    return by_serial or by_imei, None


# --- 2. Enrolment ----------------------------------------------------------------------------------
def _enrol(
    organisation_id: int,
    identities: Sequence[DeviceIdentity],
    devices: dict[str, dict[str, dict]],
    names: ModelNames | None,
    *,
    now: dt.datetime,
) -> dict[str, dict]:
    """Inserts one device per new serial; returns them by serial."""
    wanted: dict[str, DeviceIdentity] = {}
    claimed_imeis = set(devices["imei"])
    for identity in identities:
        if identity.serial and identity.serial not in wanted:
            imei = identity.imei if identity.imei and identity.imei not in claimed_imeis else None
            if imei:
                claimed_imeis.add(imei)
            wanted[identity.serial] = dataclasses.replace(identity, imei=imei)
    if not wanted:
        return {}

    def model_of(identity: DeviceIdentity) -> int | None:
        return names.resolve_first(identity.model_names) if names is not None else None

    # Built as model instances so every column gets the model's default, new columns included.
    fields = [f for f in Device._meta.concrete_fields if not f.primary_key]
    rows = []
    for serial, identity in sorted(wanted.items()):
        device = Device(
            organisation_id=organisation_id,
            serial=serial,
            imei=identity.imei,
            model_id=model_of(identity),
            reported_model=_reported_model(identity),
            enrolled_at=now,
            status_since=now,
        )
        rows.append({f.name: getattr(device, f.attname) for f in fields})
    returned = bulk.insert_returning(
        Device,
        rows,
        # A no-op update rather than DO NOTHING: the row a concurrent batch enrolled first is returned too.
        conflict="(organisation_id, serial) DO UPDATE SET serial = EXCLUDED.serial",
        returning=_DEVICE_VALUES,
    )
    return {row["serial"]: row for row in returned}


# --- 2b. Models ------------------------------------------------------------------------------------
def _model_names(
    submissions: Sequence[Submission], device_of: Sequence[dict | None], *, enrolling: bool
) -> ModelNames | None:
    """The catalogue's one rule for model names (one SELECT per batch), read only when a device is enrolled
    or a device without a model names one: a batch of known devices costs no statement more."""
    wanted = enrolling or any(
        device is not None and device["model_id"] is None and submission.identity.model_names
        for submission, device in zip(submissions, device_of, strict=True)
    )
    return DeviceModel.objects.names() if wanted else None


def _reported_model(identity: DeviceIdentity) -> str:
    """The name kept for a device's model: the report's most specific one ("samsung SM-G556B")."""
    return (
        identity.model_names[0][: Device._meta.get_field("reported_model").max_length] if identity.model_names else ""
    )


def _resolve_models(
    names: ModelNames | None, items: Sequence[tuple[int, DeviceIdentity, dict]]
) -> dict[int, dict[str, list[str]]]:
    """Gives a device without a model the one its report names, if the catalogue knows it (in place: the
    build is then looked up for it, and the state update stores it); returns, per item, a warning for a
    model the catalogue does not know, with the nearest known names (computed once per distinct name)."""
    warnings: dict[int, dict[str, list[str]]] = {}
    if names is None:
        return warnings
    for i, identity, device in items:
        if device["model_id"] is not None or not identity.model_names:
            continue
        device["model_id"] = names.resolve_first(identity.model_names)
        if device["model_id"] is None:
            warnings[i] = {"model": [unknown_model_message(names, identity.model_names)]}
    return warnings


def unknown_model_message(names: ModelNames, reported: Sequence[str]) -> str:
    """What a report naming a model the catalogue does not know is told, with the nearest known names."""
    message = gettext(
        'The catalogue has no model "%(name)s": the device keeps this name and gets its model as soon as '
        "the catalogue knows it."
    ) % {"name": reported[0]}
    return " ".join(filter(None, [message, names.did_you_mean(*reported)]))


# --- 3. Builds -------------------------------------------------------------------------------------
def _resolve_builds(organisation_id: int, wanted: set[tuple[int | None, str]]) -> dict[tuple[int, str], int]:
    pairs = {(model_id, number) for model_id, number in wanted if model_id is not None and number}
    if not pairs:
        return {}
    rows = (
        OSBuild.objects.visible_to(organisation_id)
        .filter(model_id__in={m for m, _ in pairs}, build_number__in={n for _, n in pairs})
        .values_list("pk", "model_id", "build_number", "organisation_id")
    )
    builds: dict[tuple[int, str], tuple[int, bool]] = {}
    for pk, model_id, number, owner in rows:
        key = (model_id, number)
        # The organisation's private build wins over the public one of the same number.
        if key in pairs and (key not in builds or owner is not None):
            builds[key] = (pk, owner is not None)
    return {key: pk for key, (pk, _) in builds.items()}


# --- 4. Check-ins ----------------------------------------------------------------------------------
def _insert_check_ins(rows: Sequence[tuple[Report, int, int | None]], *, now: dt.datetime) -> set[int]:
    """Inserts the rows (report, device id, build id) that are not stored yet; returns their positions."""
    if not rows:
        return set()
    values = [
        {
            "device": device_id,
            "reported_at": report.reported_at,
            "received_at": now,
            "source": report.source,
            "build_number": report.build_number,
            "build": build_id,
            "android_version": report.android_version,
            "security_patch_level": report.security_patch_level,
            "battery_level_pct": report.battery_level_pct,
            "battery_health_pct": report.battery_health_pct,
            "battery_cycle_count": report.battery_cycle_count,
            "agent_version": report.agent_version,
            "raw": report.raw,
        }
        for report, device_id, build_id in rows
    ]
    conflict = "(device_id, reported_at, source) DO NOTHING"
    device_ids = [device_id for _, device_id, _ in rows]
    if len(set(device_ids)) == len(device_ids):
        # As a rule a device reports once per batch: its id alone then names the row, and no timestamp
        # per row has to come back and be parsed (the driver's slowest loader).
        position = {device_id: n for n, device_id in enumerate(device_ids)}
        returned = bulk.insert_returning(CheckIn, values, conflict=conflict, returning=("device_id",))
        return {position[row["device_id"]] for row in returned}
    position = {(device_id, report.reported_at, report.source): n for n, (report, device_id, _) in enumerate(rows)}
    returned = bulk.insert_returning(
        CheckIn, values, conflict=conflict, returning=("device_id", "reported_at", "source")
    )
    return {position[(row["device_id"], row["reported_at"], row["source"])] for row in returned}


# --- 5. Device state -------------------------------------------------------------------------------
def _fold(state: dict, report: Report, build_id: int | None) -> dict:
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


def _record_observed_builds(
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


def _update_devices(states: dict[int, tuple[dt.datetime, dict]]) -> set[int]:
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


def _reports_deletion(report: Report, device: dict, deleted: dict[int, dt.datetime]) -> bool:
    """A report saying the device was deleted retires it (whatever its age: deletion is final) and sets no
    state of the device; its check-in is kept in the history."""
    if report.management_state != _DELETED:
        return False
    deleted.setdefault(device["id"], report.reported_at)
    return True


def _with_management_state(state: dict, report: Report) -> dict:
    if report.management_state in _STATE_OF_REPORT:
        state = {**state, "management_state": _STATE_OF_REPORT[report.management_state]}
    return state


def _update_management_states(
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
