"""Writes to devices: check-ins, battery events and waivers. Each recomputes the compliance it can move."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.translation import gettext

from devices.choices import BatteryEventKind, ObservedBuildState
from devices.compliance import engine as compliance
from devices.models import BatteryEvent, CheckIn, Device, ObservedBuild, Waiver
from fleet.models import Fleet, Organisation
from updates.choices import Channel
from updates.models import DeviceModel, OSBuild
from updates.services import build_publish, enqueue_model_recompute

if TYPE_CHECKING:
    pass


@transaction.atomic
def waiver_grant(
    *,
    organisation: Organisation,
    reason: str,
    expires_at: dt.datetime,
    device: Device | None = None,
    fleet: Fleet | None = None,
    granted_by: AbstractBaseUser | None = None,
    now: dt.datetime | None = None,
) -> Waiver:
    """Exempts a device or a fleet from alerts until ``expires_at``; the sweep lifts it when it expires."""
    now = now or timezone.now()
    waiver = Waiver(
        organisation=organisation,
        device=device,
        fleet=fleet,
        reason=reason,
        expires_at=expires_at,
        granted_by=granted_by,
        granted_at=now,
    )
    waiver.full_clean()
    waiver.save()
    _recompute_covered(waiver, now=now, reason="waiver granted")
    return waiver


@transaction.atomic
def waiver_revoke(*, waiver: Waiver, now: dt.datetime | None = None) -> Waiver:
    now = now or timezone.now()
    if waiver.revoked_at is None:
        waiver.revoked_at = now
        waiver.save(update_fields=["revoked_at"])
        _recompute_covered(waiver, now=now, reason="waiver revoked")
    return waiver


@transaction.atomic
def waiver_update(*, waiver: Waiver, reason: str) -> Waiver:
    """Rewords a waiver's reason. What it covers and until when are fixed: a different waiver is a new one."""
    waiver.reason = reason
    waiver.full_clean()
    waiver.save(update_fields=["reason"])
    return waiver


@transaction.atomic
def waivers_delete(*, waivers: QuerySet[Waiver], now: dt.datetime | None = None) -> int:
    """Deletes waivers (a superuser cleaning up a mistake; revoking keeps the record) and re-evaluates the
    devices they covered, which may no longer be waived."""
    now = now or timezone.now()
    covered = list(waivers.values_list("device_id", "fleet_id"))
    deleted, _ = waivers.delete()
    device_ids = sorted({device_id for device_id, _fleet in covered if device_id})
    if device_ids:
        compliance.recompute(device_ids=device_ids, now=now, reason="waiver deleted")
    for fleet_id in sorted({fleet_id for device_id, fleet_id in covered if not device_id and fleet_id}):
        compliance.recompute(fleet_id=fleet_id, now=now, reason="waiver deleted")
    return deleted


def _recompute_covered(waiver: Waiver, *, now: dt.datetime, reason: str) -> None:
    if waiver.device_id:
        compliance.recompute(device_ids=[waiver.device_id], now=now, reason=reason)
    else:
        compliance.recompute(fleet_id=waiver.fleet_id, now=now, reason=reason)


# --- Enrolment and assignment (the REST API's device writes) ---------------------------------------

# The model too: an MDM may know it when the report did not name it in a way the catalogue knows.
ASSIGNMENT_FIELDS = ("fleet", "asset_tag", "assignee", "channel", "model")
# What a fleet manager may also correct on the admin's device page: its identity and its dates.
ADMIN_FIELDS = (
    *ASSIGNMENT_FIELDS,
    "organisation",
    "serial",
    "imei",
    "enrolled_at",
    "retired_at",
    "battery_installed_on",
    "identity_conflict",  # cleared by a manager once the contradiction is resolved
)


def _check_fleet(fleet: Fleet | None, organisation_id: int) -> None:
    if fleet is not None and fleet.organisation_id != organisation_id:
        raise ValidationError({"fleet": gettext("This fleet belongs to another organisation.")})


@transaction.atomic
def device_enrol(
    *,
    organisation: Organisation,
    serial: str,
    imei: str | None = None,
    asset_tag: str = "",
    assignee: str = "",
    model: DeviceModel | None = None,
    fleet: Fleet | None = None,
    channel: str = Channel.STABLE,
    now: dt.datetime | None = None,
) -> Device:
    """Enrols a device: validated with the model's own rules (unique serial and IMEI per organisation,
    Luhn IMEI), then evaluated once so it starts with a status (``unknown`` until it reports)."""
    now = now or timezone.now()
    _check_fleet(fleet, organisation.pk)
    device = Device(
        organisation=organisation,
        serial=serial,
        imei=imei or None,
        asset_tag=asset_tag,
        assignee=assignee,
        model=model,
        fleet=fleet,
        channel=channel,
        enrolled_at=now,
        status_since=now,
    )
    device.full_clean()
    device.save()
    compliance.recompute(device_ids=[device.pk], now=now, reason="enrolled")
    device.refresh_from_db()
    return device


@transaction.atomic
def device_update(
    *,
    device: Device,
    now: dt.datetime | None = None,
    allowed: Sequence[str] = ASSIGNMENT_FIELDS,
    reason: str = "assignment changed",
    **changes: object,
) -> Device:
    """Changes what may be changed of a device, validated by the model's own rules, and re-evaluates it
    when a change can move its compliance (its organisation, fleet or channel picks the policy and the
    target build; its model the catalogue; retirement and battery dates the rest).

    The API changes its assignment only (fleet, asset tag, assignee, channel, model: the default ``allowed``); the
    admin's device page may also correct its identity and dates (``ADMIN_FIELDS``). Reported state and
    compliance are never assignable: they come from check-ins and the engine.
    """
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise ValidationError({field: gettext("This field cannot be changed here.") for field in unknown})
    if "organisation" in changes:
        device.organisation = changes.pop("organisation")  # type: ignore[assignment]
        changes["organisation"] = device.organisation
    if "fleet" in changes:
        _check_fleet(changes["fleet"], device.organisation_id)  # type: ignore[arg-type]
    if "model" in changes and getattr(changes["model"], "pk", None) != device.model_id:
        # The build it reported is looked up again, among the new model's builds it may run.
        model, number = changes["model"], device.reported_build_number
        builds = OSBuild.objects.visible_to(device.organisation_id).filter(model=model, build_number=number)
        changes["current_build"] = builds.private_first().first() if model is not None and number else None
    if changes.get("identity_conflict") == "":
        changes["identity_conflict_at"] = None  # resolved: its date goes with it
    for field, value in changes.items():
        setattr(device, field, value)
    device.full_clean()
    device.save(update_fields=[*changes])
    if set(changes) - {"asset_tag", "assignee", "serial", "imei", "identity_conflict", "identity_conflict_at"}:
        compliance.recompute(device_ids=[device.pk], now=now, reason=reason)
        device.refresh_from_db()
    return device


@transaction.atomic
def device_retire(*, device: Device, now: dt.datetime | None = None) -> Device:
    """Marks a device retired (kept with its history). Retiring twice keeps the first date."""
    if device.retired_at is None:
        device.retired_at = now or timezone.now()
        device.save(update_fields=["retired_at"])
    return device


@transaction.atomic
def battery_event_record(
    *,
    device: Device,
    kind: str,
    occurred_at: dt.datetime,
    health_pct: int | None = None,
    part_serial: str = "",
    reason: str = "",
    performed_by: str = "",
    recorded_by: AbstractBaseUser | None = None,
    now: dt.datetime | None = None,
) -> BatteryEvent:
    """Records what happened to a device's battery (the API's and the admin's one path for it).

    * a replacement resets the device's battery age, health and cycles, unless a newer battery is
      already recorded (a replacement recorded late is history only);
    * a reading with a health figure updates the device's battery health, unless the device reported
      after it.

    Either way the device is re-evaluated when its battery state moved.
    """
    event = BatteryEvent(
        device=device,
        kind=kind,
        occurred_at=occurred_at,
        health_pct=health_pct if kind == BatteryEventKind.READING else None,
        part_serial=part_serial,
        reason=reason,
        performed_by=performed_by,
        recorded_by=recorded_by,
    )
    event.full_clean()
    event.save()
    if kind == BatteryEventKind.REPLACEMENT:
        Device.objects.filter(pk=device.pk).filter(
            Q(battery_installed_on__isnull=True) | Q(battery_installed_on__lte=occurred_at.date())
        ).update(battery_installed_on=occurred_at.date(), battery_health_pct=None, battery_cycle_count=0)
        compliance.recompute(device_ids=[device.pk], now=now, reason="battery replaced")
    elif health_pct is not None:
        Device.objects.filter(pk=device.pk).filter(
            Q(last_check_in_at__isnull=True) | Q(last_check_in_at__lte=occurred_at)
        ).update(battery_health_pct=health_pct)
        compliance.recompute(device_ids=[device.pk], now=now, reason="battery reading")
    return event


@transaction.atomic
def battery_event_update(*, event: BatteryEvent, **changes: object) -> BatteryEvent:
    """Corrects what a recorded battery event says (its part, reason, technician): the record only, since
    the device's battery state was set when the event was recorded."""
    for field, value in changes.items():
        setattr(event, field, value)
    event.full_clean()
    event.save(update_fields=list(changes) or None)
    return event


# --- Bulk operations (admin actions over a selection of devices) -------------------------------------


@transaction.atomic
def devices_battery_replace(
    *,
    devices: QuerySet[Device],
    occurred_at: dt.datetime,
    reason: str = "",
    performed_by: str = "",
    recorded_by: AbstractBaseUser | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Records one battery replacement per device of ``devices``; set-based, whatever the selection's size.

    1. Insert the BatteryEvents with one INSERT ... SELECT over the selection.
    2. Reset battery age, health and cycles of the devices whose installed battery is not newer.
    3. Recompute the selection's compliance (one statement).
    """
    selection = devices.filter(retired_at__isnull=True).order_by()
    event_table = BatteryEvent._meta.db_table
    ids_sql, ids_params = selection.values("pk").query.sql_with_params()
    adapt = connection.ops.adapt_datetimefield_value
    created_at = now or timezone.now()
    values = [
        BatteryEventKind.REPLACEMENT,
        adapt(occurred_at) if connection.vendor == "sqlite" else occurred_at,
        reason[:255],
        performed_by[:200],
        recorded_by.pk if recorded_by is not None else None,
        adapt(created_at) if connection.vendor == "sqlite" else created_at,
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {event_table}
                    (device_id, kind, occurred_at, part_serial, reason, performed_by, recorded_by_id, created_at)
                SELECT id, %s, %s, '', %s, %s, %s, %s FROM {Device._meta.db_table} WHERE id IN ({ids_sql})""",
            [*values, *ids_params],
        )
        created = cursor.rowcount
    selection.filter(Q(battery_installed_on__isnull=True) | Q(battery_installed_on__lte=occurred_at.date())).update(
        battery_installed_on=occurred_at.date(), battery_health_pct=None, battery_cycle_count=0
    )
    compliance.recompute(devices=selection, now=now, reason="battery replaced")
    return created


@transaction.atomic
def devices_waive(
    *,
    devices: QuerySet[Device],
    reason: str,
    expires_at: dt.datetime,
    granted_by: AbstractBaseUser | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Grants one waiver per device of ``devices`` (each in its own organisation), then recomputes them."""
    now = now or timezone.now()
    if expires_at <= now:
        raise ValidationError({"expires_at": gettext("A waiver must expire in the future.")})
    rows = list(devices.order_by("pk").values_list("pk", "organisation_id"))
    Waiver.objects.bulk_create(
        Waiver(
            organisation_id=organisation_id,
            device_id=device_id,
            reason=reason,
            expires_at=expires_at,
            granted_by=granted_by,
            granted_at=now,
        )
        for device_id, organisation_id in rows
    )
    compliance.recompute(devices=devices, now=now, reason="waiver granted")
    return len(rows)


@transaction.atomic
def devices_retire(*, devices: QuerySet[Device], now: dt.datetime | None = None) -> int:
    """Retires the devices of ``devices`` not retired yet: they leave the statistics, sweeps and alerts."""
    return devices.filter(retired_at__isnull=True).update(retired_at=now or timezone.now())


def _previous_build_number() -> Subquery:
    """The build number of the same device's check-in just before this one (by reported_at, then id)."""
    return Subquery(
        CheckIn.objects.filter(device_id=OuterRef("device_id"))
        .filter(
            Q(reported_at__lt=OuterRef("reported_at")) | Q(reported_at=OuterRef("reported_at"), id__lt=OuterRef("id"))
        )
        .order_by("-reported_at", "-id")
        .values("build_number")[:1]
    )


def check_ins_prune(*, older_than: dt.datetime, batch_size: int) -> int:
    """Deletes check-ins reported before ``older_than``, except each device's build transitions; returns how many.

    1. Walk the old check-ins in id order, ``batch_size`` at a time (keyset on id): each batch is its own
       transaction and deletes at most ``batch_size`` rows, so locks stay short and replication lag small.
    2. In a batch, delete the rows whose device's previous check-in reported the same build number. The
       first report of each build (a transition) stays, so a timeline keeps its build changes and
       time-to-patch stays computable. Deleting a row that repeats its predecessor's build never turns
       another row into a transition or out of one, so batches can run in any order and a run can resume.
    StatusChange, the compliance history, is a separate table and is never touched.

    On PostgreSQL, where the table is partitioned by month (devices/partitions.py), whole months before
    ``older_than`` are first dropped as partitions, their transitions inserted back into the default
    partition; the month holding ``older_than`` stays whole until it has entirely expired. The batches
    above then walk only what lies below that month: the default partition's late reports of dropped months.
    """
    from devices import partitions

    deleted = partitions.drop_expired_partitions(older_than=older_than)
    older_than = partitions.row_prune_cutoff(older_than=older_than)
    cursor = 0
    while True:
        with transaction.atomic():
            window = list(
                CheckIn.objects.filter(id__gt=cursor, reported_at__lt=older_than)
                .order_by("id")
                .values_list("id", flat=True)[:batch_size]
            )
            if not window:
                return deleted
            # A range, not a list of ids: a few thousand bound parameters would exceed SQLite's limit.
            repeats = (
                CheckIn.objects.filter(id__gte=window[0], id__lte=window[-1], reported_at__lt=older_than)
                .annotate(previous_build_number=_previous_build_number())
                .filter(previous_build_number=F("build_number"))
                .values("id")
            )
            count, _by_model = CheckIn.objects.filter(id__in=repeats).delete()
            deleted += count
            cursor = window[-1]


# --- Battery replacements in bulk (imported from a spreadsheet) ---------------------------------------


@dataclasses.dataclass(frozen=True)
class Replacement:
    """One battery replacement of one device, as a spreadsheet records it."""

    device_id: int
    occurred_at: dt.datetime
    part_serial: str = ""
    reason: str = ""
    performed_by: str = ""


@transaction.atomic
def battery_replacements_record(
    *,
    replacements: list[Replacement],
    recorded_by: AbstractBaseUser | None = None,
    now: dt.datetime | None = None,
) -> int:
    """:func:`battery_replace` for many devices at once, each with its own date and part; set-based.

    1. Insert the BatteryEvents in one statement.
    2. Reset battery age, health and cycles of each device to its newest replacement here, unless a newer
       battery is already recorded (one UPDATE per distinct date, whatever the number of devices).
    3. Recompute the devices' compliance (one statement).
    """
    if not replacements:
        return 0
    created_at = now or timezone.now()
    BatteryEvent.objects.bulk_create(
        BatteryEvent(
            device_id=replacement.device_id,
            kind=BatteryEventKind.REPLACEMENT,
            occurred_at=replacement.occurred_at,
            part_serial=replacement.part_serial[:100],
            reason=replacement.reason[:255],
            performed_by=replacement.performed_by[:200],
            recorded_by=recorded_by,
            created_at=created_at,
        )
        for replacement in replacements
    )
    newest: dict[int, dt.date] = {}
    for replacement in replacements:
        day = replacement.occurred_at.date()
        newest[replacement.device_id] = max(day, newest.get(replacement.device_id, day))
    by_day: dict[dt.date, list[int]] = {}
    for device_id, day in newest.items():
        by_day.setdefault(day, []).append(device_id)
    for day, device_ids in sorted(by_day.items()):
        Device.objects.filter(pk__in=sorted(device_ids)).filter(
            Q(battery_installed_on__isnull=True) | Q(battery_installed_on__lte=day)
        ).update(battery_installed_on=day, battery_health_pct=None, battery_cycle_count=0)
    devices_recompute(device_ids=list(newest), now=now, reason="battery replaced")
    return len(replacements)


def devices_recompute(*, device_ids: list[int], now: dt.datetime | None = None, reason: str = "") -> None:
    """``compliance.recompute`` of these devices, in the form PostgreSQL plans well for this many.

    Measured on 200,000 devices: ``id = ANY(array)`` of 5,000 ids takes 0.2 s but of 500 ids 6.5 s (a
    plan gone wrong for a few hundred rows), while the same ids as a subquery take 0.06 s for 500 and
    0.5 s for 5,000. Fewer than 1,000 ids go as a subquery, more as the array.
    """
    if not device_ids:
        return
    if connection.vendor == "postgresql" and len(device_ids) < 1000:
        subquery = Device.objects.filter(pk__in=RawSQL("SELECT unnest(%s::bigint[])", [sorted(device_ids)]))
        compliance.recompute(devices=subquery, now=now, reason=reason)
    else:
        compliance.recompute(device_ids=device_ids, now=now, reason=reason)


# --- Observed builds ---------------------------------------------------------------------------------
@transaction.atomic
def observed_build_promote(*, observed: ObservedBuild, now: dt.datetime | None = None) -> ObservedBuild:
    """Makes an observed build a catalogue build: the organisation's private build (an organisation vouches
    for its own fleet, not for everyone's), released when it was first seen, with the patch level its devices
    report. ``build_publish`` re-evaluates the model after commit, which links the devices that run it."""
    if observed.state != ObservedBuildState.OBSERVED:
        raise ValidationError({"state": gettext("Only an observed build can be promoted.")})
    if observed.security_patch_level is None:
        raise ValidationError(
            {"security_patch_level": gettext("No device reported a patch level for this build: it cannot be promoted.")}
        )
    build = build_publish(
        model=observed.model,
        build_number=observed.build_number,
        security_patch_level=observed.security_patch_level,
        released_at=observed.first_seen_at,
        android_version=observed.android_version,
        organisation=observed.organisation,
        notes=gettext("Promoted from the builds the organisation's devices reported."),
    )
    observed.state = ObservedBuildState.PROMOTED
    observed.promoted_build = build
    observed.changed_at = now or timezone.now()
    observed.save(update_fields=["state", "promoted_build", "changed_at"])
    return observed


@transaction.atomic
def observed_build_revoke(*, observed: ObservedBuild, now: dt.datetime | None = None) -> ObservedBuild:
    """An observed build the organisation does not vouch for: never a target again, and its devices are judged
    by their patch level alone. The model is re-evaluated after commit."""
    if observed.state == ObservedBuildState.PROMOTED:
        raise ValidationError({"state": gettext("A promoted build is revoked in the catalogue, not here.")})
    if observed.state != ObservedBuildState.REVOKED:
        observed.state = ObservedBuildState.REVOKED
        observed.changed_at = now or timezone.now()
        observed.save(update_fields=["state", "changed_at"])
        enqueue_model_recompute(model_id=observed.model_id, reason=f"observed build {observed.build_number} revoked")
    return observed
