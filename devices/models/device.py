"""Devices: the phone as FleetPatch knows it."""

from __future__ import annotations

import datetime as dt

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from devices.choices import (
    BatteryStatus,
    ComplianceStatus,
    ManagementState,
)
from devices.validators import validate_imei, validate_serial
from updates.choices import Channel
from updates.validators import validate_patch_level_not_in_future

_PERCENT = [MinValueValidator(0), MaxValueValidator(100)]


class Device(models.Model):
    """One handset, its last reported state, and its compliance as the engine last computed it."""

    # Device is the table every check-in updates: each index costs on every one of those writes, so the
    # foreign keys that a composite index already leads with have no index of their own (db_index=False).
    organisation = models.ForeignKey(
        "fleet.Organisation",
        on_delete=models.CASCADE,
        related_name="devices",
        verbose_name=_("organisation"),
        db_index=False,  # (organisation, serial) and (organisation, compliance_status, id) lead with it
    )
    fleet = models.ForeignKey(
        "fleet.Fleet", on_delete=models.SET_NULL, null=True, blank=True, related_name="devices", verbose_name=_("fleet")
    )
    # A placeholder ("unknown", all zeros...) is refused; a device known only by its MDM's id has a serial
    # made from it ("headwind:h0042", DeviceSourceId.generated_serial).
    serial = models.CharField(_("serial number"), max_length=64, validators=[validate_serial])
    # NULL, not "", for a device without IMEI: the per-organisation uniqueness applies only to real IMEIs.
    imei = models.CharField(_("IMEI"), max_length=15, null=True, blank=True, validators=[validate_imei])  # noqa: DJ001
    asset_tag = models.CharField(_("asset tag"), max_length=64, blank=True)
    assignee = models.CharField(_("assignee"), max_length=200, blank=True)
    model = models.ForeignKey(
        "updates.DeviceModel",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="devices",
        verbose_name=_("model"),
        db_index=False,  # (model, current_build) leads with it
    )
    # Columns added after devices first shipped carry a database default as well (db_default): a row written
    # by a process that predates them (a rolling deploy) or by set-based SQL (bench/fleet_data.py) stays valid.
    reported_model = models.CharField(
        _("reported model"),
        max_length=150,
        blank=True,
        default="",
        db_default="",
        help_text=_(
            "The model name its last report gave, as given; a device whose model the catalogue did not know "
            "gets it as soon as the catalogue learns this name."
        ),
    )
    channel = models.CharField(_("update channel"), max_length=10, choices=Channel.choices, default=Channel.STABLE)
    enrolled_at = models.DateTimeField(_("enrolled at"), default=timezone.now)
    retired_at = models.DateTimeField(_("retired at"), null=True, blank=True)
    # What the MDM says of the device (Android Management API "state": LOST, DISABLED), until it is ACTIVE again.
    management_state = models.CharField(
        _("management state"),
        max_length=10,
        choices=ManagementState.choices,
        default=ManagementState.ACTIVE,
        db_default=ManagementState.ACTIVE,
        blank=True,
    )
    management_state_since = models.DateTimeField(_("management state since"), null=True, blank=True)

    # Last reported state (from the newest check-in; older reports never overwrite it).
    current_build = models.ForeignKey(
        "updates.OSBuild",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("current build"),
    )
    reported_build_number = models.CharField(
        _("reported build number"),
        max_length=100,
        blank=True,
        help_text=_("As the device reported it, even when the catalogue does not know it."),
    )
    android_version = models.CharField(_("Android version"), max_length=20, blank=True)
    security_patch_level = models.DateField(
        _("security patch level"), null=True, blank=True, validators=[validate_patch_level_not_in_future]
    )
    last_check_in_at = models.DateTimeField(_("last check-in"), null=True, blank=True)
    battery_level_pct = models.PositiveSmallIntegerField(
        _("battery level (%)"), null=True, blank=True, validators=_PERCENT
    )
    battery_health_pct = models.PositiveSmallIntegerField(
        _("battery health (%)"), null=True, blank=True, validators=_PERCENT
    )
    battery_cycle_count = models.PositiveIntegerField(_("battery charge cycles"), null=True, blank=True)
    battery_installed_on = models.DateField(_("battery installed on"), null=True, blank=True)

    # Compliance, denormalised and kept current by the engine (devices.compliance.engine).
    compliance_status = models.CharField(
        _("compliance status"),
        max_length=20,
        choices=ComplianceStatus.choices,
        default=ComplianceStatus.UNKNOWN,
    )
    status_since = models.DateTimeField(_("status since"), default=timezone.now)
    behind_since = models.DateField(_("behind since"), null=True, blank=True)
    latest_build = models.ForeignKey(
        "updates.OSBuild",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("target build"),
        # Never searched by; the engine rewrites it. Deleting a build (rare: builds are revoked) scans.
        db_index=False,
    )
    builds_behind = models.PositiveIntegerField(_("builds behind"), default=0)
    battery_status = models.CharField(
        _("battery status"), max_length=20, choices=BatteryStatus.choices, default=BatteryStatus.UNKNOWN
    )
    # Identity (devices.checkins.ingest): a report whose IMEI contradicts the device it matched is stored on
    # it, the device's IMEI left as it was, and the contradiction written here for a person to look at.
    identity_conflict = models.TextField(
        _("identity conflict"),
        blank=True,
        default="",
        db_default="",
        help_text=_("What the last contradictory report said (e.g. another device's IMEI). Clear it once resolved."),
    )
    identity_conflict_at = models.DateTimeField(_("identity conflict seen at"), null=True, blank=True)

    is_waived = models.BooleanField(
        _("waived"), default=False, help_text=_("Covered by an active waiver: real status kept, left out of alerts.")
    )

    class Meta:
        ordering = ["organisation_id", "serial"]
        verbose_name = _("device")
        verbose_name_plural = _("devices")
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "serial"],
                name="device_unique_serial",
                violation_error_message=_("This organisation already has a device with this serial number."),
            ),
            models.UniqueConstraint(
                fields=["organisation", "imei"],
                condition=Q(imei__isnull=False),
                name="device_unique_imei",
                violation_error_message=_("This organisation already has a device with this IMEI."),
            ),
            models.CheckConstraint(
                condition=Q(imei__isnull=True) | Q(imei__regex=r"^[0-9]{15}$"),
                name="device_imei_is_15_digits",
                violation_error_message=_("An IMEI has exactly 15 digits."),
            ),
            models.CheckConstraint(
                condition=Q(battery_health_pct__isnull=True) | Q(battery_health_pct__lte=100),
                name="device_battery_health_is_a_percentage",
                violation_error_message=_("Battery health is a percentage between 0 and 100."),
            ),
            models.CheckConstraint(
                condition=Q(battery_level_pct__isnull=True) | Q(battery_level_pct__lte=100),
                name="device_battery_level_is_a_percentage",
                violation_error_message=_("Battery level is a percentage between 0 and 100."),
            ),
        ]
        indexes = [
            # Admin and API lists: an organisation's devices by status, keyset-paginated on id.
            models.Index(fields=["organisation", "compliance_status", "id"], name="device_org_status_idx"),
            # The engine: devices of a model on a given build (catalogue changes, "builds behind").
            models.Index(fields=["model", "current_build"], name="device_model_build_idx"),
            # The sweep and "last seen" filters.
            models.Index(fields=["last_check_in_at"], name="device_last_check_in_idx"),
            models.Index(fields=["organisation", "battery_status"], name="device_org_battery_idx"),
            models.Index(fields=["imei"], name="device_imei_idx"),
            models.Index(fields=["asset_tag"], name="device_asset_tag_idx"),
            # Exact serial search across organisations (superusers); members use (organisation, serial).
            models.Index(fields=["serial"], name="device_serial_idx"),
            # Linking: the names that devices without a model reported (a small part of the fleet).
            models.Index(fields=["reported_model"], condition=Q(model__isnull=True), name="device_unlinked_model_idx"),
        ]

    def __str__(self) -> str:
        return self.serial

    def patch_age_days(self, today: dt.date | None = None) -> int | None:
        """Days since the security patch level it reports (or its build's), None when unknown."""
        level = self.security_patch_level or (self.current_build.security_patch_level if self.current_build else None)
        if level is None:
            return None
        return ((today or timezone.now().date()) - level).days
