"""What the compliance engine keeps for reporting: daily snapshots, tallies, rollout curves."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from devices.choices import (
    BatteryStatus,
    ComplianceStatus,
)

_PERCENT = [MinValueValidator(0), MaxValueValidator(100)]


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
