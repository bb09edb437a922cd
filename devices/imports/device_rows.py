"""Device rows: validating each row of a device file, then planning, chunk by chunk, what it changes.

Validation is per row in Python (cheap); what a chunk of rows means for the database (which devices
exist, which IMEIs are taken, which builds are known) is a handful of queries per chunk, whatever its size.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.translation import gettext

from common.dates import EARLIEST_PATCH_LEVEL
from devices.imports import columns as c
from devices.imports.results import Outcome, RowResult
from devices.models import Device
from devices.validators import is_placeholder_serial
from fleet.models import Fleet, Organisation
from updates.models import DeviceModel, OSBuild

# The device fields an import may set, as loaded for comparison and written back.
IMPORTED_FIELDS = (
    "imei",
    "asset_tag",
    "assignee",
    "model_id",
    "fleet_id",
    "battery_installed_on",
    "reported_build_number",
    "current_build_id",
    "security_patch_level",
)

# The file's column each imported field comes from (to name what changed).
FIELD_COLUMNS = {
    "imei": "imei",
    "asset_tag": "asset_tag",
    "assignee": "assignee",
    "model_id": "model",
    "fleet_id": "fleet",
    "battery_installed_on": "battery_installed_on",
    "reported_build_number": "os_build",
    "current_build_id": "os_build",
    "security_patch_level": "patch_level",
}

# The imported fields the compliance engine reads: changing only an asset tag, an assignee or an IMEI
# cannot move a device's status, so such updates skip the recompute.
COMPLIANCE_INPUTS = {
    "model_id",
    "fleet_id",
    "battery_installed_on",
    "reported_build_number",
    "current_build_id",
    "security_patch_level",
}


@dataclasses.dataclass
class DeviceRow:
    """One valid row: its serial and the values its non-empty cells give (an empty cell changes nothing)."""

    line: int
    serial: str
    imei: str | None = None
    asset_tag: str | None = None
    assignee: str | None = None
    model_id: int | None = None
    fleet_name: str | None = None
    os_build: str | None = None
    patch_level: dt.date | None = None
    battery_installed_on: dt.date | None = None


class ModelCatalogue:
    """Device models by name under the catalogue's one rule (:class:`updates.models.ModelNames`, read
    once per file), with the import's messages for a name that is unknown or ambiguous."""

    def __init__(self) -> None:
        self.names = DeviceModel.objects.names()

    def resolve(self, name: str, manufacturer: str = "") -> int:
        matches = self.names.candidates(name, manufacturer)
        if len(matches) == 1:
            return next(iter(matches))
        if matches:
            raise c.CellError(
                gettext("model: %(name)r is the name of several manufacturers' models; add a manufacturer column.")
                % {"name": name}
            )
        message = gettext(
            "model: %(name)r is not in the catalogue (add it there first; models are never created by an import)."
        ) % {"name": name}
        raise c.CellError(" ".join(filter(None, [message, self.names.did_you_mean(name)])))


@dataclasses.dataclass
class RowContext:
    """What every row of one import is checked against, computed once per file (labels are translated
    once, not per row: 200,000 rows would spend seconds in gettext)."""

    organisation: Organisation
    catalogue: ModelCatalogue
    today: dt.date = dataclasses.field(default_factory=lambda: timezone.now().date())
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    organisation_names: set[str] = dataclasses.field(default_factory=set)

    def __post_init__(self) -> None:
        self.labels = {column.field: str(column.label) for column in c.DEVICE_COLUMNS}
        self.organisation_names = {c.fold(self.organisation.slug), c.fold(self.organisation.name)}


def parse_row(line: int, cells: list[Any], index: dict[str, int], *, context: RowContext) -> DeviceRow:
    """A row's cells as a :class:`DeviceRow`; raises :class:`columns.CellError` naming the first bad cell."""

    def cell(field: str) -> Any:
        position = index.get(field)
        if position is None or position >= len(cells):
            return None
        value = cells[position]
        return None if value is None or (isinstance(value, str) and not value.strip()) else value

    labels = context.labels
    serial = c.bounded_text(cell("serial"), label=labels["serial"], max_length=64)
    if not serial:
        raise c.CellError(gettext("%(column)s: required.") % {"column": labels["serial"]})
    if is_placeholder_serial(serial):
        # "unknown" on every row would make one device of the whole file.
        raise c.CellError(
            gettext("%(column)s: %(value)r is a placeholder some phones report, not a serial number.")
            % {"column": labels["serial"], "value": serial}
        )
    row = DeviceRow(line=line, serial=serial)
    if (named := cell("organisation")) is not None and c.fold(c.text(named)) not in context.organisation_names:
        raise c.CellError(
            gettext("organisation: this row is for %(named)r, and the file is imported into %(organisation)s.")
            % {"named": c.text(named), "organisation": context.organisation.name}
        )
    if (value := cell("imei")) is not None:
        row.imei = c.parse_imei(value, label=labels["imei"])
    if (value := cell("asset_tag")) is not None:
        row.asset_tag = c.bounded_text(value, label=labels["asset_tag"], max_length=64)
    if (value := cell("assignee")) is not None:
        row.assignee = c.bounded_text(value, label=labels["assignee"], max_length=200)
    if (value := cell("model")) is not None:
        row.model_id = context.catalogue.resolve(c.text(value), c.text(cell("manufacturer")))
    if (value := cell("fleet")) is not None:
        row.fleet_name = c.bounded_text(value, label=labels["fleet"], max_length=200)
    if (value := cell("os_build")) is not None:
        row.os_build = c.bounded_text(value, label=labels["os_build"], max_length=100)
    if (value := cell("patch_level")) is not None:
        row.patch_level = c.parse_past_date(
            value, label=labels["patch_level"], today=context.today, earliest=EARLIEST_PATCH_LEVEL
        )
    if (value := cell("battery_installed_on")) is not None:
        row.battery_installed_on = c.parse_past_date(value, label=labels["battery_installed_on"], today=context.today)
    return row


class FleetIndex:
    """The organisation's fleets by folded name or slug; names not found are fleets to create."""

    def __init__(self, organisation: Organisation) -> None:
        self.organisation = organisation
        self.ids: dict[str, int] = {}
        self.reload()
        self.missing: dict[str, str] = {}  # folded → name as first written

    def reload(self) -> None:
        for pk, name, slug in Fleet.objects.filter(organisation=self.organisation).values_list("pk", "name", "slug"):
            self.ids.setdefault(c.fold(slug), pk)
            self.ids[c.fold(name)] = pk

    def id_for(self, name: str) -> int | None:
        key = c.fold(name)
        if key in self.ids:
            return self.ids[key]
        self.missing.setdefault(key, name)
        return None


def among(values: list[str]) -> list[str] | RawSQL:
    """The right-hand side of ``__in`` for thousands of values: on PostgreSQL one array parameter
    (``IN (SELECT unnest(%s))``), not one parameter per value that psycopg would splice in one by one."""
    if connection.vendor == "postgresql":
        return RawSQL("SELECT unnest(%s::varchar[])", [values])
    return values


@dataclasses.dataclass
class ChunkPlan:
    """What one chunk of valid rows changes: devices to write, and each row's outcome.

    Each device to write is a dict of attnames: ``serial`` and the imported fields, the device's current
    values merged with the row's changes for an existing device (only ``update_fields`` are written to it).
    """

    devices: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    update_fields: set[str] = dataclasses.field(default_factory=set)
    # Serials whose compliance may move: new devices, and changes to what the engine reads.
    recompute: set[str] = dataclasses.field(default_factory=set)
    results: list[RowResult] = dataclasses.field(default_factory=list)


def plan_chunk(rows: list[DeviceRow], *, organisation: Organisation, fleets: FleetIndex) -> ChunkPlan:
    """Compares a chunk of rows with the database (three queries) and decides each row's outcome.

    1. Load the devices with these serials and those with these IMEIs; a serial that belongs to another
       organisation's device, and an IMEI already used by another device, are row errors (never an update
       of that device).
    2. Load the catalogue builds the rows name, for their models (an organisation's private build first).
    3. Per row: the values that differ from the device's are changes. The OS build and patch level are
       taken only for a device that never checked in (its own reports are newer than any spreadsheet);
       a battery date only when newer than the one recorded (a replacement recorded since wins).
    """
    plan = ChunkPlan()
    labels = {column.field: str(column.label) for column in c.DEVICE_COLUMNS}
    serials = [row.serial for row in rows]
    # Every organisation's devices with these serials in one query along the serial index: "organisation
    # is not this one" would make PostgreSQL scan every other tenant's devices.
    existing: dict[str, dict] = {}
    elsewhere: set[str] = set()
    for values in (
        Device.objects.filter(serial__in=among(serials))
        .order_by()
        .values("pk", "organisation_id", "serial", "last_check_in_at", *IMPORTED_FIELDS)
    ):
        if values["organisation_id"] == organisation.pk:
            existing[values["serial"]] = values
        else:
            elsewhere.add(values["serial"])
    imeis = [row.imei for row in rows if row.imei]
    imei_owners = {
        imei: (organisation_id, serial)
        for imei, organisation_id, serial in Device.objects.filter(imei__in=among(imeis))
        .order_by()
        .values_list("imei", "organisation_id", "serial")
    }
    model_ids = {row.model_id or existing.get(row.serial, {}).get("model_id") for row in rows if row.os_build}
    builds: dict[tuple[int, str], int] = {}
    if model_ids - {None}:
        for pk, model_id, number, owner in (
            OSBuild.objects.visible_to(organisation)
            .filter(model_id__in=model_ids - {None}, build_number__in={r.os_build for r in rows})
            .values_list("pk", "model_id", "build_number", "organisation_id")
        ):
            # A private build of the organisation wins over a public build with the same number.
            if owner is not None or (model_id, number) not in builds:
                builds[(model_id, number)] = pk

    for row in sorted(rows, key=lambda r: r.serial):
        if row.serial in elsewhere and row.serial not in existing:
            plan.results.append(
                RowResult(
                    row.line,
                    row.serial,
                    Outcome.FAILED,
                    gettext("serial number: a device of another organisation has this serial number."),
                )
            )
            continue
        if row.imei and row.imei in imei_owners and imei_owners[row.imei] != (organisation.pk, row.serial):
            owner_organisation, owner_serial = imei_owners[row.imei]
            message = (
                gettext("IMEI: already the IMEI of device %(serial)s.") % {"serial": owner_serial}
                if owner_organisation == organisation.pk
                else gettext("IMEI: a device of another organisation has this IMEI.")
            )
            plan.results.append(RowResult(row.line, row.serial, Outcome.FAILED, message))
            continue
        current = existing.get(row.serial)
        wanted, notes = _wanted_values(row, current, fleets=fleets, builds=builds)
        if current is None:
            plan.devices.append({"serial": row.serial, **wanted})
            plan.recompute.add(row.serial)
            plan.results.append(RowResult(row.line, row.serial, Outcome.CREATED, " ".join(notes)))
            continue
        changes = {field: value for field, value in wanted.items() if current[field] != value}
        if not changes:
            plan.results.append(RowResult(row.line, row.serial, Outcome.UNCHANGED, " ".join(notes)))
            continue
        merged = {field: current[field] for field in IMPORTED_FIELDS} | changes
        plan.devices.append({"serial": row.serial, **merged})
        plan.update_fields.update(changes)
        if COMPLIANCE_INPUTS & set(changes):
            plan.recompute.add(row.serial)
        changed = ", ".join(sorted({labels[FIELD_COLUMNS[field]] for field in changes}))
        message = gettext("Changed: %(columns)s.") % {"columns": changed}
        plan.results.append(RowResult(row.line, row.serial, Outcome.UPDATED, " ".join([message, *notes])))
    return plan


def _wanted_values(
    row: DeviceRow, current: dict | None, *, fleets: FleetIndex, builds: dict[tuple[int, str], int]
) -> tuple[dict[str, Any], list[str]]:
    wanted: dict[str, Any] = {}
    notes: list[str] = []
    for field in ("imei", "asset_tag", "assignee", "model_id"):
        value = getattr(row, field)
        if value is not None:
            wanted[field] = value
    if row.fleet_name is not None:
        # A fleet still to be created has no id yet: -1 differs from every device's fleet (a change).
        fleet_id = fleets.id_for(row.fleet_name)
        wanted["fleet_id"] = fleet_id if fleet_id is not None else -1
    if row.battery_installed_on is not None:
        recorded = current["battery_installed_on"] if current else None
        if recorded is None or row.battery_installed_on > recorded:
            wanted["battery_installed_on"] = row.battery_installed_on
        elif row.battery_installed_on < recorded:
            notes.append(gettext("Battery date kept: a newer battery is recorded."))
    if row.os_build is not None or row.patch_level is not None:
        if current is not None and current["last_check_in_at"] is not None:
            notes.append(gettext("OS build and patch level kept: the device reports them itself."))
        else:
            if row.os_build is not None:
                model_id = wanted.get("model_id", current["model_id"] if current else None)
                wanted["reported_build_number"] = row.os_build
                wanted["current_build_id"] = builds.get((model_id, row.os_build))
            if row.patch_level is not None:
                wanted["security_patch_level"] = row.patch_level
    return wanted, notes


def deduplicate(rows: Iterable[DeviceRow]) -> tuple[list[DeviceRow], list[RowResult]]:
    """Keeps the first row of each serial (and of each IMEI); later ones fail, naming the line they repeat."""
    kept: list[DeviceRow] = []
    failed: list[RowResult] = []
    first_serial: dict[str, int] = {}
    first_imei: dict[str, tuple[int, str]] = {}
    for row in rows:
        if row.serial in first_serial:
            failed.append(
                RowResult(
                    row.line,
                    row.serial,
                    Outcome.FAILED,
                    gettext("serial number: already on line %(line)d of this file.")
                    % {"line": first_serial[row.serial]},
                )
            )
            continue
        if row.imei and row.imei in first_imei:
            failed.append(
                RowResult(
                    row.line,
                    row.serial,
                    Outcome.FAILED,
                    gettext("IMEI: already on line %(line)d of this file (%(serial)s).")
                    % {"line": first_imei[row.imei][0], "serial": first_imei[row.imei][1]},
                )
            )
            continue
        first_serial[row.serial] = row.line
        if row.imei:
            first_imei[row.imei] = (row.line, row.serial)
        kept.append(row)
    return kept, failed
