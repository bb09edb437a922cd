"""Which device a check-in report names: by serial, then IMEI, then the MDM's own id of the device (kept per
source as a ``DeviceSourceId``), and what of the report contradicts the device it matched.

Part of the set-based ingestion (:mod:`devices.checkins.ingest`): a batch resolves its devices in one or two
SELECTs, records the MDM ids it taught in at most one upsert, and flags contradictions in at most one UPDATE.
Placeholder serials never reach this module: the parsers drop them (``devices.validators``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from django.db import connection
from django.db.models import Case, TextField, Value, When
from django.utils.translation import gettext

from common import bulk
from devices.checkins.parsers import DeviceIdentity
from devices.models import Device, DeviceSourceId

DEVICE_VALUES = ("id", "serial", "imei", "model_id", "last_check_in_at", "management_state")


@dataclasses.dataclass(frozen=True)
class Conflict:
    """A report that contradicts the device it was matched to: flagged on the device, warned in the answer."""

    field: str
    warning: str  # for the sender
    note: str  # for the device page


@dataclasses.dataclass(frozen=True)
class Match:
    device: dict | None = None
    error: dict[str, list[str]] | None = None
    conflict: Conflict | None = None


def resolve_devices(organisation_id: int, identities: Sequence[DeviceIdentity]) -> dict[str, dict]:
    """The organisation's devices the identities name, by serial, by IMEI and by (source, MDM id)."""
    serials = sorted({i.serial for i in identities if i.serial} | {enrolment_serial(i) for i in identities} - {""})
    imeis = sorted({i.imei for i in identities if i.imei})
    found: dict[str, dict] = {"serial": {}, "imei": {}, "source_id": {}}
    # The MDM ids already known, one SELECT (none when the batch carries no MDM id: the native format).
    device_of_source_id: dict[tuple[str, str], int] = {}
    by_source: dict[str, set[str]] = {}
    for identity in identities:
        if identity.source_id:
            by_source.setdefault(identity.source, set()).add(identity.source_id)
    if by_source:
        clauses, params = [], [organisation_id]
        for source, external_ids in sorted(by_source.items()):
            sql, values = bulk.sql_in("external_id", sorted(external_ids))
            clauses.append(f"(source = %s AND {sql})")
            params.extend([source, *values])
        rows = bulk.select_rows(
            DeviceSourceId,
            ("device_id", "source", "external_id"),
            f"organisation_id = %s AND ({' OR '.join(clauses)})",
            params,
        )
        device_of_source_id = {(row["source"], row["external_id"]): row["device_id"] for row in rows}
    ids = sorted(set(device_of_source_id.values()))
    if not serials and not imeis and not ids:
        return found
    clauses, params = [], []
    for column, values in (("serial", serials), ("imei", imeis), ("id", ids)):
        if values:
            sql, value_params = bulk.sql_in(column, values)
            clauses.append(sql)
            params.extend(value_params)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    rows = bulk.select_rows(
        Device,
        DEVICE_VALUES,
        f"organisation_id = %s AND ({' OR '.join(clauses)}) ORDER BY id{lock}",
        [organisation_id, *params],
    )
    by_id = {}
    for row in rows:
        by_id[row["id"]] = row
        found["serial"][row["serial"]] = row
        if row["imei"]:
            found["imei"][row["imei"]] = row
    for key, device_id in device_of_source_id.items():
        if device_id in by_id:
            found["source_id"][key] = by_id[device_id]
    return found


def match_device(devices: dict[str, dict], identity: DeviceIdentity) -> Match:
    """The device a report names, and what of the report contradicts it.

    Its serial first (a real one: placeholders were dropped by the parser), then its IMEI, then its MDM's
    id. A device enrolled under a serial made from its MDM id (its real serial was unknown then) is the
    same phone when it later reports a real serial; one whose real serial differs is another phone: the
    report then names a new device. Matched by serial or MDM id but carrying an IMEI another device has, or
    another IMEI than the device's own: stored on the matched device, its IMEI untouched, and flagged.
    """
    by_serial = devices["serial"].get(identity.serial) if identity.serial else None
    by_imei = devices["imei"].get(identity.imei) if identity.imei else None
    by_source = devices["source_id"].get((identity.source, identity.source_id)) if identity.source_id else None
    if by_serial is None and identity.serial:
        # An unknown real serial: only a device still waiting for its real serial may be this phone.
        if by_imei is not None and not DeviceSourceId.is_generated_serial(by_imei["serial"]):
            return Match(conflict=_imei_of_another(identity, by_imei))
        if by_source is not None and not DeviceSourceId.is_generated_serial(by_source["serial"]):
            by_source = None  # the MDM gave its id to another phone since: the id moves to this one
    if by_serial is None and by_imei is None and by_source is None and not identity.serial and identity.source_id:
        # Enrolled earlier under the serial made from this MDM id (found by serial in the same SELECT).
        by_source = devices["serial"].get(enrolment_serial(identity))
    device = by_serial or by_imei or by_source
    if device is None or not identity.imei or by_imei is not None and by_imei["id"] == device["id"]:
        return Match(device=device)
    if by_imei is not None:
        return Match(device=device, conflict=_imei_of_another(identity, by_imei))
    if device["imei"] and device["imei"] != identity.imei:
        return Match(
            device=device,
            conflict=Conflict(
                field="imei",
                warning=gettext(
                    "This IMEI is not the device's (%(own)s): the report was stored on the device its serial or "
                    "MDM id names, its IMEI left unchanged, and the device flagged for review."
                )
                % {"own": device["imei"]},
                note=gettext("A report gave IMEI %(reported)s, but this device's IMEI is %(own)s.")
                % {"reported": identity.imei, "own": device["imei"]},
            ),
        )
    return Match(device=device)


def _imei_of_another(identity: DeviceIdentity, other: dict) -> Conflict:
    return Conflict(
        field="imei",
        warning=gettext(
            "This IMEI belongs to another device of this organisation (serial %(serial)s): the report was not "
            "merged into it, and the device the report names was flagged for review."
        )
        % {"serial": other["serial"]},
        note=gettext("A report gave IMEI %(imei)s, which device %(serial)s has.")
        % {"imei": identity.imei, "serial": other["serial"]},
    )


def flag_conflicts(conflicts: dict[int, Conflict], *, now: dt.datetime) -> None:
    """One UPDATE of the devices a report contradicted (rows already locked by the batch; none as a rule)."""
    if not conflicts:
        return
    Device.objects.filter(pk__in=conflicts).update(
        identity_conflict=Case(
            *(When(pk=device_id, then=Value(conflict.note)) for device_id, conflict in sorted(conflicts.items())),
            output_field=TextField(),
        ),
        identity_conflict_at=now,
    )


def enrolment_serial(identity: DeviceIdentity) -> str:
    """The serial a new device is enrolled under: its own, else one made from its MDM id, else none."""
    if identity.serial:
        return identity.serial
    if identity.source_id:
        return DeviceSourceId.generated_serial(identity.source, identity.source_id)
    return ""


def record_source_ids(
    organisation_id: int,
    matched: Sequence[tuple[DeviceIdentity, dict]],
    devices: dict[str, dict],
    *,
    now: dt.datetime,
) -> None:
    """Records the MDM ids the batch taught: new ones, and ones that now name another device (the MDM gave
    the id to another phone). One upsert in key order, none when every id was already known."""
    wanted: dict[tuple[str, str], int] = {}
    for identity, device in matched:
        if not identity.source_id:
            continue
        key = (identity.source, identity.source_id)
        known = devices["source_id"].get(key)
        if known is None or known["id"] != device["id"]:
            wanted.setdefault(key, device["id"])
    if not wanted:
        return
    rows = [
        {
            "organisation": organisation_id,
            "device": device_id,
            "source": source,
            "external_id": external_id,
            "first_seen_at": now,
        }
        for (source, external_id), device_id in sorted(wanted.items())
    ]
    bulk.insert_returning(
        DeviceSourceId,
        rows,
        conflict="(organisation_id, source, external_id) DO UPDATE SET device_id = EXCLUDED.device_id",
        returning=("id",),
    )
