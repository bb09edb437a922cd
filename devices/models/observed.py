"""Observed builds: builds an organisation's devices report that the catalogue lacks."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from devices.choices import ObservedBuildState


class ObservedBuild(models.Model):
    """A build number an organisation's devices report for a model the catalogue has no build of that number for.

    Recorded by the check-in ingest (one upsert per batch); ``device_count`` is refreshed by the sweep and by
    a model's recompute, not by the ingest (see docs/compliance.md, "Observed builds").
    """

    organisation = models.ForeignKey(
        "fleet.Organisation",
        on_delete=models.CASCADE,
        related_name="observed_builds",
        verbose_name=_("organisation"),
        db_index=False,  # the unique (organisation, model, build_number) leads with it
    )
    model = models.ForeignKey(
        "updates.DeviceModel", on_delete=models.CASCADE, related_name="observed_builds", verbose_name=_("model")
    )
    build_number = models.CharField(_("build number"), max_length=100)
    android_version = models.CharField(_("Android version"), max_length=20, blank=True)
    security_patch_level = models.DateField(
        _("security patch level"),
        null=True,
        blank=True,
        help_text=_("As the newest report of this build gave it."),
    )
    first_seen_at = models.DateTimeField(_("first seen"), default=timezone.now)
    last_seen_at = models.DateTimeField(_("last seen"), default=timezone.now)
    device_count = models.PositiveIntegerField(
        _("devices on it"), default=0, help_text=_("Active devices reporting it, as the last sweep counted them.")
    )
    state = models.CharField(
        _("state"), max_length=10, choices=ObservedBuildState.choices, default=ObservedBuildState.OBSERVED
    )
    promoted_build = models.ForeignKey(
        "updates.OSBuild",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("catalogue build"),
        help_text=_("The catalogue build it was promoted to."),
    )
    changed_at = models.DateTimeField(_("promoted or revoked at"), null=True, blank=True)

    class Meta:
        ordering = ["organisation_id", "model_id", "-security_patch_level", "-first_seen_at"]
        verbose_name = _("observed build")
        verbose_name_plural = _("observed builds")
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "model", "build_number"],
                name="observedbuild_unique_build",
                violation_error_message=_("This organisation already has an observed build of this number."),
            ),
            models.CheckConstraint(
                condition=~Q(state=ObservedBuildState.PROMOTED) | Q(changed_at__isnull=False),
                name="observedbuild_promotion_dated",
                violation_error_message=_("A promoted build has the date of its promotion."),
            ),
        ]

    def __str__(self) -> str:
        return self.build_number
