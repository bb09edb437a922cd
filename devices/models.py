"""Devices, what they report (check-ins), their batteries, and the history of their compliance; and what the
compliance engine records of its own work: the rollout curves (BuildRollout) and the sweeps (SweepRun, SweepRange),
which moved here from updates and keep their tables."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from devices.choices import (
    BatteryEventKind,
    BatteryStatus,
    CheckInSource,
    ComplianceStatus,
    ImportKind,
    ImportStatus,
    SweepRangeStatus,
    SweepStatus,
)
from devices.validators import validate_imei
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
    serial = models.CharField(_("serial number"), max_length=64)
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
    channel = models.CharField(_("update channel"), max_length=10, choices=Channel.choices, default=Channel.STABLE)
    enrolled_at = models.DateTimeField(_("enrolled at"), default=timezone.now)
    retired_at = models.DateTimeField(_("retired at"), null=True, blank=True)

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
        ]

    def __str__(self) -> str:
        return self.serial

    def patch_age_days(self, today: dt.date | None = None) -> int | None:
        """Days since the security patch level it reports (or its build's), None when unknown."""
        level = self.security_patch_level or (self.current_build.security_patch_level if self.current_build else None)
        if level is None:
            return None
        return ((today or timezone.now().date()) - level).days


class CheckIn(models.Model):
    """An append-only report from an MDM of what a device ran at one moment."""

    # No single-column indexes on device and build: the unique (device, reported_at, source) and the
    # (build, reported_at) indexes lead with them, and every index costs on each of millions of inserts.
    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="check_ins", verbose_name=_("device"), db_index=False
    )
    reported_at = models.DateTimeField(_("reported at"))
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    source = models.CharField(_("source"), max_length=20, choices=CheckInSource.choices, default=CheckInSource.API)
    build_number = models.CharField(_("build number"), max_length=100, blank=True)
    build = models.ForeignKey(
        "updates.OSBuild",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="check_ins",
        verbose_name=_("build"),
        db_index=False,
        help_text=_("The catalogue build matching the build number, when it was known at the time."),
    )
    android_version = models.CharField(_("Android version"), max_length=20, blank=True)
    security_patch_level = models.DateField(_("security patch level"), null=True, blank=True)
    battery_level_pct = models.PositiveSmallIntegerField(
        _("battery level (%)"), null=True, blank=True, validators=_PERCENT
    )
    battery_health_pct = models.PositiveSmallIntegerField(
        _("battery health (%)"), null=True, blank=True, validators=_PERCENT
    )
    battery_cycle_count = models.PositiveIntegerField(_("battery charge cycles"), null=True, blank=True)
    agent_version = models.CharField(_("agent version"), max_length=50, blank=True)
    raw = models.JSONField(_("raw payload"), null=True, blank=True, help_text=_("The report as received, for audit."))

    class Meta:
        verbose_name = _("check-in")
        verbose_name_plural = _("check-ins")
        constraints = [
            models.UniqueConstraint(
                fields=["device", "reported_at", "source"],
                name="checkin_idempotent",
                violation_error_message=_("This report was already received."),
            ),
            models.CheckConstraint(
                condition=Q(battery_health_pct__isnull=True) | Q(battery_health_pct__lte=100),
                name="checkin_battery_health_is_a_percentage",
                violation_error_message=_("Battery health is a percentage between 0 and 100."),
            ),
            models.CheckConstraint(
                condition=Q(battery_level_pct__isnull=True) | Q(battery_level_pct__lte=100),
                name="checkin_battery_level_is_a_percentage",
                violation_error_message=_("Battery level is a percentage between 0 and 100."),
            ),
        ]
        indexes = [
            # A device's timeline, newest first. The unique constraint above already covers
            # (device, reported_at), so no second index is needed for it.
            models.Index(fields=["build", "reported_at"], name="checkin_build_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.device} @ {self.reported_at:%Y-%m-%d %H:%M}"


class BatteryEvent(models.Model):
    """A battery replacement, or a health reading taken by a technician."""

    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="battery_events", verbose_name=_("device")
    )
    kind = models.CharField(
        _("kind"), max_length=20, choices=BatteryEventKind.choices, default=BatteryEventKind.REPLACEMENT
    )
    occurred_at = models.DateTimeField(_("when"), default=timezone.now)
    part_serial = models.CharField(_("part serial number"), max_length=100, blank=True)
    health_pct = models.PositiveSmallIntegerField(_("health (%)"), null=True, blank=True, validators=_PERCENT)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    performed_by = models.CharField(_("performed by"), max_length=200, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("recorded by"),
    )
    created_at = models.DateTimeField(_("recorded at"), default=timezone.now, editable=False)

    class Meta:
        ordering = ["-occurred_at"]
        verbose_name = _("battery event")
        verbose_name_plural = _("battery events")
        constraints = [
            models.CheckConstraint(
                condition=Q(health_pct__isnull=True) | Q(health_pct__lte=100),
                name="batteryevent_health_is_a_percentage",
                violation_error_message=_("Battery health is a percentage between 0 and 100."),
            ),
        ]
        indexes = [models.Index(fields=["device", "occurred_at"], name="batteryevent_device_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.device} {self.occurred_at:%Y-%m-%d}"


class StatusChange(models.Model):
    """One compliance transition of one device; written once, never rewritten."""

    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="status_changes", verbose_name=_("device")
    )
    # Denormalised so digests and dashboards read an organisation's history without a join.
    organisation = models.ForeignKey(
        "fleet.Organisation", on_delete=models.CASCADE, related_name="+", verbose_name=_("organisation")
    )
    from_status = models.CharField(_("from"), max_length=20, choices=ComplianceStatus.choices)
    to_status = models.CharField(_("to"), max_length=20, choices=ComplianceStatus.choices)
    changed_at = models.DateTimeField(_("changed at"), default=timezone.now)
    reason = models.CharField(_("reason"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("status change")
        verbose_name_plural = _("status changes")
        constraints = [
            models.CheckConstraint(
                condition=~Q(from_status=models.F("to_status")),
                name="statuschange_is_a_change",
                violation_error_message=_("A status change must change the status."),
            ),
        ]
        indexes = [
            models.Index(fields=["organisation", "changed_at"], name="statuschange_org_time_idx"),
            models.Index(fields=["device", "changed_at"], name="statuschange_device_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.device}: {self.from_status} → {self.to_status}"


class Waiver(models.Model):
    """A time-bounded exemption of one device or one fleet from alerts; the real status is kept."""

    organisation = models.ForeignKey(
        "fleet.Organisation", on_delete=models.CASCADE, related_name="waivers", verbose_name=_("organisation")
    )
    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, null=True, blank=True, related_name="waivers", verbose_name=_("device")
    )
    fleet = models.ForeignKey(
        "fleet.Fleet", on_delete=models.CASCADE, null=True, blank=True, related_name="waivers", verbose_name=_("fleet")
    )
    reason = models.CharField(_("reason"), max_length=255)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("granted by"),
    )
    granted_at = models.DateTimeField(_("granted at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"))
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        ordering = ["-granted_at"]
        verbose_name = _("waiver")
        verbose_name_plural = _("waivers")
        constraints = [
            models.CheckConstraint(
                condition=Q(device__isnull=False, fleet__isnull=True) | Q(device__isnull=True, fleet__isnull=False),
                name="waiver_covers_a_device_or_a_fleet",
                violation_error_message=_("A waiver covers either one device or one fleet."),
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("granted_at")),
                name="waiver_expires_after_grant",
                violation_error_message=_("A waiver must expire after it is granted."),
            ),
        ]
        indexes = [
            models.Index(fields=["device", "expires_at"], name="waiver_device_idx"),
            models.Index(fields=["fleet", "expires_at"], name="waiver_fleet_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.device or self.fleet} ({self.reason})"

    def clean(self) -> None:
        for covered in (self.device, self.fleet):
            if covered is not None and self.organisation_id and covered.organisation_id != self.organisation_id:
                raise ValidationError(_("A waiver can only cover devices and fleets of its own organisation."))

    def is_active_at(self, moment: dt.datetime) -> bool:
        return self.revoked_at is None and self.granted_at <= moment < self.expires_at


class ComplianceSnapshot(models.Model):
    """How many of an organisation's active devices were in one status on one day; kept by the sweep."""

    organisation = models.ForeignKey(
        "fleet.Organisation", on_delete=models.CASCADE, related_name="+", verbose_name=_("organisation")
    )
    day = models.DateField(_("day"))
    status = models.CharField(_("status"), max_length=20, choices=ComplianceStatus.choices)
    count = models.PositiveIntegerField(_("devices"))

    class Meta:
        verbose_name = _("compliance snapshot")
        verbose_name_plural = _("compliance snapshots")
        constraints = [
            models.UniqueConstraint(fields=["organisation", "day", "status"], name="snapshot_one_per_day_and_status")
        ]

    def __str__(self) -> str:
        return f"{self.organisation_id} {self.day} {self.status}: {self.count}"


class DeviceTally(models.Model):
    """How many of an organisation's active devices share one combination of the dashboard's dimensions.

    Rewritten by the sweep (``devices.compliance.tallies.tally_devices``) in one GROUP BY over the fleet, so
    the dashboard of an organisation of any size sums a few hundred rows instead of scanning its devices.
    """

    organisation = models.ForeignKey(
        "fleet.Organisation", on_delete=models.CASCADE, related_name="+", verbose_name=_("organisation")
    )
    model = models.ForeignKey(
        "updates.DeviceModel", on_delete=models.CASCADE, null=True, related_name="+", verbose_name=_("model")
    )
    compliance_status = models.CharField(_("compliance status"), max_length=20, choices=ComplianceStatus.choices)
    battery_status = models.CharField(_("battery status"), max_length=20, choices=BatteryStatus.choices)
    patch_bucket = models.CharField(_("patch age"), max_length=10)
    on_target = models.BooleanField(_("on target build"))
    is_waived = models.BooleanField(_("waived"))
    count = models.PositiveIntegerField(_("devices"))
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        verbose_name = _("device tally")
        verbose_name_plural = _("device tallies")
        indexes = [models.Index(fields=["organisation"], name="tally_organisation_idx")]

    def __str__(self) -> str:
        return f"{self.organisation_id}: {self.count}"


class ImportJob(models.Model):
    """An uploaded spreadsheet between its preview and its confirmation, then what importing it did."""

    organisation = models.ForeignKey(
        "fleet.Organisation", on_delete=models.CASCADE, related_name="+", verbose_name=_("organisation")
    )
    kind = models.CharField(_("kind"), max_length=30, choices=ImportKind.choices)
    status = models.CharField(_("status"), max_length=20, choices=ImportStatus.choices, default=ImportStatus.PENDING)
    filename = models.CharField(_("file name"), max_length=255)
    # The file itself until it is imported (bounded by IMPORT_MAX_UPLOAD_BYTES), emptied afterwards: in
    # the database, not on a disk, so the worker that imports it needs no storage shared with the web.
    content = models.BinaryField(_("content"), editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("uploaded by"),
    )
    created_at = models.DateTimeField(_("uploaded at"), default=timezone.now)
    finished_at = models.DateTimeField(_("imported at"), null=True, blank=True)
    summary = models.JSONField(_("summary"), default=dict, blank=True)
    result_csv = models.TextField(_("result per row (CSV)"), blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("import")
        verbose_name_plural = _("imports")
        indexes = [models.Index(fields=["organisation", "created_at"], name="importjob_org_time_idx")]

    def __str__(self) -> str:
        return f"{self.filename} ({self.get_kind_display()})"


# --- What the compliance engine writes (devices/compliance/): rollout curves and sweep bookkeeping ----------


class BuildRollout(models.Model):
    """How many of an organisation's devices had installed a build, N days after its release.

    Rewritten daily from the check-ins (``devices.compliance.rollouts.rollouts_refresh``) for the recent builds,
    so the dashboard draws the rollout curves without reading the check-in history.
    """

    organisation = models.ForeignKey(
        "fleet.Organisation", on_delete=models.CASCADE, related_name="+", verbose_name=_("organisation")
    )
    build = models.ForeignKey(
        "updates.OSBuild", on_delete=models.CASCADE, related_name="rollouts", verbose_name=_("build")
    )
    days_since_release = models.PositiveSmallIntegerField(_("days since release"))
    installed = models.PositiveIntegerField(_("devices that installed it"))
    eligible = models.PositiveIntegerField(_("devices of the model"))
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        # The tables kept their names when these three models moved from updates to devices: no data was copied.
        db_table = "updates_buildrollout"
        verbose_name = _("build rollout")
        verbose_name_plural = _("build rollouts")
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "build", "days_since_release"], name="rollout_one_point_per_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.build} +{self.days_since_release}d: {self.installed}/{self.eligible}"


class SweepRun(models.Model):
    """One periodic compliance sweep: its id ranges, their progress, and what it changed in the fleet.

    Global, not an organisation's: one sweep covers every tenant, so only superusers see it in the admin.
    """

    task_id = models.CharField(
        _("task id"),
        max_length=255,
        unique=True,
        null=True,
        blank=True,
        help_text=_("The Celery task that started the sweep: a redelivered task resumes its run."),
    )
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=SweepStatus.choices, default=SweepStatus.RUNNING)
    range_size = models.PositiveIntegerField(_("devices per range"))
    ranges_planned = models.PositiveIntegerField(_("ranges planned"), default=0)
    ranges_done = models.PositiveIntegerField(_("ranges done"), default=0)
    ranges_failed = models.PositiveIntegerField(
        _("ranges failed"), default=0, help_text=_("Ranges given up after their last retry.")
    )
    range_retries = models.PositiveIntegerField(
        _("range retries"), default=0, help_text=_("Failed attempts of a range, each retried alone.")
    )
    devices_updated = models.PositiveBigIntegerField(_("devices updated"), default=0)
    transitions = models.JSONField(_("transitions"), default=dict, blank=True, help_text=_("By the status entered."))

    class Meta:
        db_table = "updates_sweeprun"
        ordering = ["-started_at"]
        verbose_name = _("sweep run")
        verbose_name_plural = _("sweep runs")
        indexes = [
            # /metrics reads the last finished run at every scrape; retention deletes by start.
            models.Index(fields=["finished_at"], name="sweeprun_finished_idx"),
            models.Index(fields=["started_at"], name="sweeprun_started_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M:%S} ({self.get_status_display()})"

    @property
    def duration(self) -> dt.timedelta | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    def summary(self) -> dict:
        """What the sweep task returns and logs."""
        return {
            "run": self.pk,
            "status": self.status,
            "ranges": self.ranges_planned,
            "updated": self.devices_updated,
            "transitions": dict(self.transitions),
        }


class SweepRange(models.Model):
    """One id range of a sweep, recomputed in one transaction; its row makes a redelivered task a no-op."""

    run = models.ForeignKey(SweepRun, on_delete=models.CASCADE, related_name="ranges", verbose_name=_("sweep run"))
    lo = models.BigIntegerField(_("first device id"))
    hi = models.BigIntegerField(_("last device id"))
    status = models.CharField(
        _("status"), max_length=10, choices=SweepRangeStatus.choices, default=SweepRangeStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("failed attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    devices_updated = models.PositiveIntegerField(_("devices updated"), default=0)
    transitions = models.JSONField(_("transitions"), default=dict, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        db_table = "updates_sweeprange"
        ordering = ["run", "lo"]
        verbose_name = _("sweep range")
        verbose_name_plural = _("sweep ranges")
        constraints = [models.UniqueConstraint(fields=["run", "lo"], name="sweeprange_unique_start")]

    def __str__(self) -> str:
        return f"{self.lo}-{self.hi}"
