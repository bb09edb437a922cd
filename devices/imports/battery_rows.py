"""Battery replacement rows: validating each row, then planning, chunk by chunk, which replacements are new."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.utils.translation import gettext

from devices.choices import BatteryEventKind
from devices.imports import columns as c
from devices.imports.results import Outcome, RowResult
from devices.models import BatteryEvent, Device
from fleet.models import Organisation


@dataclasses.dataclass
class BatteryRow:
    line: int
    serial: str
    replaced_on: dt.date
    part_serial: str = ""
    reason: str = ""
    performed_by: str = ""


def occurred_at(day: dt.date) -> dt.datetime:
    """A replacement known by its day is recorded at noon UTC, as the admin's bulk action records it."""
    return dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)


def parse_row(line: int, cells: list[Any], index: dict[str, int], *, labels: dict[str, str]) -> BatteryRow:
    """A row's cells as a :class:`BatteryRow` (``labels``: the columns' translated names, computed once)."""

    def cell(field: str) -> Any:
        position = index.get(field)
        return cells[position] if position is not None and position < len(cells) else None

    serial = c.bounded_text(cell("serial"), label=labels["serial"], max_length=64)
    if not serial:
        raise c.CellError(gettext("%(column)s: required.") % {"column": labels["serial"]})
    if c.text(cell("replaced_on")) == "":
        raise c.CellError(gettext("%(column)s: required.") % {"column": labels["replaced_on"]})
    return BatteryRow(
        line=line,
        serial=serial,
        replaced_on=c.parse_past_date(cell("replaced_on"), label=labels["replaced_on"]),
        part_serial=c.bounded_text(cell("part_serial"), label=labels["part_serial"], max_length=100),
        reason=c.bounded_text(cell("reason"), label=labels["reason"], max_length=255),
        performed_by=c.bounded_text(cell("performed_by"), label=labels["performed_by"], max_length=200),
    )


def deduplicate(rows: Iterable[BatteryRow]) -> tuple[list[BatteryRow], list[RowResult]]:
    """One replacement per device and day: a repeated (serial, date) fails, naming the line it repeats."""
    kept: list[BatteryRow] = []
    failed: list[RowResult] = []
    first: dict[tuple[str, dt.date], int] = {}
    for row in rows:
        key = (row.serial, row.replaced_on)
        if key in first:
            message = gettext("This replacement is already on line %(line)d of this file.") % {"line": first[key]}
            failed.append(RowResult(row.line, row.serial, Outcome.FAILED, message))
            continue
        first[key] = row.line
        kept.append(row)
    return kept, failed


@dataclasses.dataclass
class ReplacementPlan:
    new: list[tuple[int, BatteryRow]] = dataclasses.field(default_factory=list)  # (device id, row)
    results: list[RowResult] = dataclasses.field(default_factory=list)


def plan_chunk(rows: list[BatteryRow], *, organisation: Organisation) -> ReplacementPlan:
    """Matches rows to the organisation's devices and leaves out replacements already recorded (two queries).

    A replacement is already recorded when the device has a replacement event on the same day (UTC),
    whoever recorded it (this file before, the admin's action, the API): re-importing changes nothing.
    """
    plan = ReplacementPlan()
    devices = {
        serial: (pk, retired_at)
        for pk, serial, retired_at in Device.objects.filter(
            organisation=organisation, serial__in=[row.serial for row in rows]
        ).values_list("pk", "serial", "retired_at")
    }
    device_ids = [pk for pk, _retired in devices.values()]
    recorded: set[tuple[int, dt.date]] = set()
    if device_ids:
        days = [row.replaced_on for row in rows]
        for device_id, when in BatteryEvent.objects.filter(
            device_id__in=device_ids,
            kind=BatteryEventKind.REPLACEMENT,
            occurred_at__gte=occurred_at(min(days)) - dt.timedelta(hours=12),
            occurred_at__lt=occurred_at(max(days)) + dt.timedelta(hours=12),
        ).values_list("device_id", "occurred_at"):
            recorded.add((device_id, when.astimezone(dt.UTC).date()))
    for row in rows:
        if row.serial not in devices:
            message = gettext("serial number: %(organisation)s has no device with this serial number.") % {
                "organisation": organisation.name
            }
            plan.results.append(RowResult(row.line, row.serial, Outcome.FAILED, message))
            continue
        device_id, retired_at = devices[row.serial]
        if retired_at is not None:
            message = gettext("serial number: this device is retired.")
            plan.results.append(RowResult(row.line, row.serial, Outcome.FAILED, message))
        elif (device_id, row.replaced_on) in recorded:
            message = gettext("Already recorded.")
            plan.results.append(RowResult(row.line, row.serial, Outcome.UNCHANGED, message))
        else:
            plan.new.append((device_id, row))
            plan.results.append(RowResult(row.line, row.serial, Outcome.CREATED))
    return plan
