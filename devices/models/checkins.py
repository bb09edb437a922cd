"""What devices report: check-ins."""

from __future__ import annotations

from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from devices.choices import (
    CheckInSource,
)
from devices.models.device import Device

_PERCENT = [MinValueValidator(0), MaxValueValidator(100)]


class AuditCopyField(models.JSONField):
    """The audit copy of a payload: a row stored before the API capped JSON depth (common.api.parsers) may be
    nested deeper than Python can decode; it reads as a note saying so, so no page or export fails on it."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        try:
            return super().from_db_value(value, expression, connection)
        except RecursionError:
            return {
                "unreadable": "nested too deeply to decode",
                "bytes": len(value) if isinstance(value, str) else None,
            }


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
    raw = AuditCopyField(_("raw payload"), null=True, blank=True, help_text=_("The report as received, for audit."))

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
