"""A device's history: battery events, compliance transitions, waivers."""

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
    ComplianceStatus,
)
from devices.models.device import Device

_PERCENT = [MinValueValidator(0), MaxValueValidator(100)]


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
