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

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from common import bulk
from devices.checkins import device_state
from devices.checkins.identity import (
    DEVICE_VALUES,
    Conflict,
    enrolment_serial,
    flag_conflicts,
    match_device,
    record_source_ids,
    resolve_devices,
)
from devices.checkins.parsers import DeviceIdentity, Report
from devices.choices import ComplianceStatus
from devices.compliance import engine as compliance
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


@transaction.atomic
def checkins_ingest(
    *,
    organisation_id: int,
    submissions: Sequence[Submission],
    can_enrol: bool,
    now: dt.datetime | None = None,
) -> list[ItemResult]:
    """Records a batch of reports for one organisation; returns one result per submission, in order.

    1. Resolve every device named in the batch by serial, IMEI or its MDM's id (one SELECT of the MDM ids
       when the batch carries any, then one SELECT locking the devices in id order so concurrent batches
       queue instead of deadlocking). A report whose IMEI contradicts the device it matched is stored on it
       with a warning, and the device flagged (one UPDATE, only when there is a contradiction).
    2. Enrol the unknown ones when allowed (one INSERT, serials in order; a concurrent enrolment of the
       same serial is absorbed by ON CONFLICT), the model resolved by name in one SELECT; then record the
       MDM ids the batch taught (one upsert, only when there are new ones).
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

    devices = resolve_devices(organisation_id, [s.identity for s in submissions])
    device_of: list[dict | None] = []
    conflicts: list[Conflict | None] = []
    for index, submission in enumerate(submissions):
        match = match_device(devices, submission.identity)
        if match.error:
            results[index] = ItemResult(status=ItemStatus.ERROR, errors=match.error)
        device_of.append(match.device)
        conflicts.append(match.conflict)

    # 2. Enrolment of the devices nobody knows.
    missing = [i for i, s in enumerate(submissions) if results[i] is None and device_of[i] is None]
    enrolled_ids: set[int] = set()
    names = _model_names(submissions, device_of, enrolling=bool(missing and can_enrol))
    if missing and can_enrol:
        enrolled = _enrol(organisation_id, [submissions[i].identity for i in missing], devices, names, now=now)
        for i in missing:
            key = enrolment_serial(submissions[i].identity)
            device = enrolled.get(key) if key else None
            if device is None:
                results[i] = ItemResult(
                    status=ItemStatus.ERROR,
                    errors={
                        "serial": [gettext("A serial number (or the MDM's id of the device) is needed to enrol it.")]
                    },
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

    valid = [i for i in range(len(submissions)) if results[i] is None]
    record_source_ids(organisation_id, [(submissions[i].identity, device_of[i]) for i in valid], devices, now=now)
    flag_conflicts({device_of[i]["id"]: conflicts[i] for i in valid if conflicts[i] is not None}, now=now)

    # 3. Builds (of the model a device without one now reports, if the catalogue knows it).
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
        if device_state.reports_deletion(report, device, deleted):
            continue
        last = device["last_check_in_at"]
        if last is not None and report.reported_at < last:
            continue
        applied_items.add(i)
        _, state = newest.get(device["id"], (None, {}))
        state = device_state.fold(state, report, builds.get((device["model_id"], report.build_number)))
        if submissions[i].identity.model_names:
            state["model_id"] = device["model_id"]
            state["reported_model"] = _reported_model(submissions[i].identity)
        newest[device["id"]] = (report.reported_at, device_state.with_management_state(state, report))
    applied_devices = device_state.update_devices(newest)
    applied_items = {i for i in applied_items if device_of[i]["id"] in applied_devices}
    device_state.update_management_states(
        {device_of[i]["id"]: device_of[i] for i in valid}, newest, applied_devices, deleted
    )

    # 5b. Builds the catalogue lacks, recorded as the organisation's observed builds (one upsert).
    device_state.record_observed_builds(
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
            warnings=_warnings(submissions[i].report.warnings, warnings.get(i), conflicts[i]),
        )
    return results  # type: ignore[return-value]


def batch_warnings(results: Sequence[ItemResult]) -> list[tuple[int, dict[str, list[str]]]]:
    """(position, warnings) of every item of a batch answered with warnings: what a record of the batch
    (the rejected-messages record, a log) keeps of what was dropped or doubted, in one call."""
    return [(index, result.warnings) for index, result in enumerate(results) if result.warnings]


def _warnings(
    parsed: dict[str, list[str]] | None, model: dict[str, list[str]] | None, conflict: Conflict | None
) -> dict[str, list[str]] | None:
    """An item's warnings: what its parser dropped, an unknown model, a contradictory IMEI."""
    warnings: dict[str, list[str]] = {}
    for source in (parsed, model):
        for field, reasons in (source or {}).items():
            warnings.setdefault(field, []).extend(reasons)
    if conflict is not None:
        warnings.setdefault(conflict.field, []).append(conflict.warning)
    return warnings or None


# --- 1. Devices: devices/checkins/identity.py ------------------------------------------------------
# --- 2. Enrolment ----------------------------------------------------------------------------------
def _enrol(
    organisation_id: int,
    identities: Sequence[DeviceIdentity],
    devices: dict[str, dict],
    names: ModelNames | None,
    *,
    now: dt.datetime,
) -> dict[str, dict]:
    """Inserts one device per new serial (its own, or one made from its MDM id); returns them by serial."""
    wanted: dict[str, DeviceIdentity] = {}
    claimed_imeis = set(devices["imei"])
    for identity in identities:
        serial = enrolment_serial(identity)
        if serial and serial not in wanted:
            imei = identity.imei if identity.imei and identity.imei not in claimed_imeis else None
            if imei:
                claimed_imeis.add(imei)
            wanted[serial] = dataclasses.replace(identity, imei=imei)
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
        returning=DEVICE_VALUES,
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
