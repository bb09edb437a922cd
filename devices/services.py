"""Writes to devices: check-ins, battery events and waivers. Each recomputes the compliance it can move."""

from __future__ import annotations

import dataclasses
import datetime as dt

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from devices.choices import BatteryEventKind, CheckInSource
from devices.models import BatteryEvent, CheckIn, Device, Waiver
from fleet.models import Fleet, Organisation
from updates import compliance
from updates.models import OSBuild


@dataclasses.dataclass(frozen=True)
class Report:
    """One validated check-in report, whatever format it arrived in."""

    reported_at: dt.datetime
    source: str = CheckInSource.API
    build_number: str = ""
    android_version: str = ""
    security_patch_level: dt.date | None = None
    battery_level_pct: int | None = None
    battery_health_pct: int | None = None
    battery_cycle_count: int | None = None
    agent_version: str = ""
    raw: dict | None = None


@dataclasses.dataclass(frozen=True)
class CheckInOutcome:
    created: bool  # False: the same report (device, reported_at, source) was already stored
    applied: bool  # False: older than the device's last check-in, kept in history only
    compliance_status: str


def build_for_report(*, device: Device, build_number: str) -> OSBuild | None:
    """The catalogue build a device means by ``build_number``: its organisation's private build first."""
    if not build_number or device.model_id is None:
        return None
    return (
        OSBuild.objects.filter(model_id=device.model_id, build_number=build_number)
        .filter(Q(organisation__isnull=True) | Q(organisation_id=device.organisation_id))
        .order_by(F("organisation_id").desc(nulls_last=True))
        .first()
    )


@transaction.atomic
def device_check_in(*, device: Device, report: Report, now: dt.datetime | None = None) -> CheckInOutcome:
    """Records one report and, unless it is older than what the device last said, applies it.

    1. Append the CheckIn (idempotent on device, reported_at, source: a resent report is stored once).
    2. Update the device's reported state with a conditional UPDATE that only matches when this report
       is not older than ``last_check_in_at``, so late or concurrent reports never regress it.
    3. Recompute this device's compliance inline (the engine's single-device path).
    """
    now = now or timezone.now()
    build = build_for_report(device=device, build_number=report.build_number)
    try:
        with transaction.atomic():
            CheckIn.objects.create(
                device=device,
                reported_at=report.reported_at,
                received_at=now,
                source=report.source,
                build_number=report.build_number,
                build=build,
                android_version=report.android_version,
                security_patch_level=report.security_patch_level,
                battery_level_pct=report.battery_level_pct,
                battery_health_pct=report.battery_health_pct,
                battery_cycle_count=report.battery_cycle_count,
                agent_version=report.agent_version,
                raw=report.raw,
            )
        created = True
    except IntegrityError:
        created = False

    state: dict = {"last_check_in_at": report.reported_at}
    # Fields a report leaves out (Headwind sends no build number) keep their last known value.
    if report.build_number:
        state.update(current_build=build, reported_build_number=report.build_number)
    for field in (
        "android_version",
        "security_patch_level",
        "battery_level_pct",
        "battery_health_pct",
        "battery_cycle_count",
    ):
        value = getattr(report, field)
        if value not in (None, ""):
            state[field] = value
    applied = bool(
        created
        and Device.objects.filter(pk=device.pk)
        .filter(Q(last_check_in_at__isnull=True) | Q(last_check_in_at__lte=report.reported_at))
        .update(**state)
    )
    compliance.recompute(device_ids=[device.pk], now=now, reason="check-in")
    device.refresh_from_db()
    return CheckInOutcome(created=created, applied=applied, compliance_status=device.compliance_status)


@transaction.atomic
def battery_replace(
    *,
    device: Device,
    occurred_at: dt.datetime,
    part_serial: str = "",
    reason: str = "",
    performed_by: str = "",
    recorded_by: AbstractBaseUser | None = None,
    now: dt.datetime | None = None,
) -> BatteryEvent:
    """Records a replacement; a new battery resets the device's battery age, health and cycles."""
    event = BatteryEvent(
        device=device,
        kind=BatteryEventKind.REPLACEMENT,
        occurred_at=occurred_at,
        part_serial=part_serial,
        reason=reason,
        performed_by=performed_by,
        recorded_by=recorded_by,
    )
    event.full_clean()
    event.save()
    # A replacement recorded late (older than the battery installed since) is history only.
    Device.objects.filter(pk=device.pk).filter(
        Q(battery_installed_on__isnull=True) | Q(battery_installed_on__lte=occurred_at.date())
    ).update(battery_installed_on=occurred_at.date(), battery_health_pct=None, battery_cycle_count=0)
    compliance.recompute(device_ids=[device.pk], now=now, reason="battery replaced")
    return event


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


def _recompute_covered(waiver: Waiver, *, now: dt.datetime, reason: str) -> None:
    if waiver.device_id:
        compliance.recompute(device_ids=[waiver.device_id], now=now, reason=reason)
    else:
        compliance.recompute(fleet_id=waiver.fleet_id, now=now, reason=reason)
