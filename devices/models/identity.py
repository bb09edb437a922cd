"""The MDMs' own ids of a device (Headwind ``deviceId``, an Android Management API device ``name``), per source."""

from __future__ import annotations

import hashlib

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from devices.choices import CheckInSource

SERIAL_MAX_LENGTH = 64


class DeviceSourceId(models.Model):
    """One MDM's id of one device: how a report without a usable serial or IMEI still finds its phone."""

    organisation = models.ForeignKey(
        "fleet.Organisation",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("organisation"),
        db_index=False,  # the unique (organisation, source, external_id) leads with it
    )
    device = models.ForeignKey(
        "devices.Device", on_delete=models.CASCADE, related_name="source_ids", verbose_name=_("device")
    )
    source = models.CharField(_("source"), max_length=20, choices=CheckInSource.choices)
    external_id = models.CharField(
        _("id in the source"),
        max_length=255,
        help_text=_("Headwind MDM's deviceId, or the Android Management API device's name."),
    )
    first_seen_at = models.DateTimeField(_("first seen at"), default=timezone.now)

    class Meta:
        verbose_name = _("device id in an MDM")
        verbose_name_plural = _("device ids in MDMs")
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "source", "external_id"],
                name="device_source_id_unique",
                violation_error_message=_("This organisation already has a device with this id in this source."),
            )
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.external_id}"

    @staticmethod
    def generated_serial(source: str, external_id: str) -> str:
        """The serial of a device enrolled by its MDM id alone: ``<source>:<id>``, or ``<source>:#<hash>``
        when that would not fit in a serial. Stable, so the same phone always gets the same one, and a
        concurrent enrolment of it meets the (organisation, serial) uniqueness."""
        serial = f"{source}:{external_id}"
        if len(serial) <= SERIAL_MAX_LENGTH:
            return serial
        return f"{source}:#{hashlib.sha256(external_id.encode()).hexdigest()[:40]}"

    @staticmethod
    def is_generated_serial(serial: str) -> bool:
        """True for a serial FleetPatch made from an MDM id (the phone's real serial is still unknown)."""
        source, colon, _rest = serial.partition(":")
        return bool(colon) and source in CheckInSource.values
