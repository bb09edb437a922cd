"""What Pub/Sub pushes leave besides check-ins: the messages acknowledged but not applied (so that nothing is
lost nor redelivered forever), and the message ids already received (so that a redelivery stores nothing)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from devices.choices import CheckInSource, RejectionKind


class RejectedMessage(models.Model):
    """A pushed message FleetPatch acknowledged without applying it: why, and what it said (bounded)."""

    organisation = models.ForeignKey(
        "fleet.Organisation",
        on_delete=models.CASCADE,
        related_name="rejected_messages",
        verbose_name=_("organisation"),
        db_index=False,  # (organisation, received_at) leads with it
    )
    api_client = models.ForeignKey(
        "fleet.ApiClient",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("API client"),
        db_index=False,
    )
    source = models.CharField(_("source"), max_length=20, choices=CheckInSource.choices, default=CheckInSource.AMAPI)
    notification_type = models.CharField(_("notification type"), max_length=50, blank=True)
    message_id = models.CharField(_("Pub/Sub message id"), max_length=100, blank=True)
    kind = models.CharField(_("reason"), max_length=10, choices=RejectionKind.choices)
    errors = models.JSONField(_("errors"), default=dict, help_text=_("Field name to reasons."))
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    raw = models.JSONField(_("raw payload"), null=True, blank=True, help_text=_("Bounded in size, secrets removed."))

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = _("rejected message")
        verbose_name_plural = _("rejected messages")
        indexes = [
            models.Index(fields=["organisation", "received_at"], name="rejected_org_received_idx"),
            models.Index(fields=["received_at"], name="rejected_received_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.notification_type or self.source} {self.message_id}".strip()


class PubSubMessage(models.Model):
    """A Pub/Sub message id an organisation already received: its redelivery is acknowledged and ignored."""

    organisation = models.ForeignKey(
        "fleet.Organisation", on_delete=models.CASCADE, related_name="+", verbose_name=_("organisation"), db_index=False
    )
    message_id = models.CharField(_("Pub/Sub message id"), max_length=100)
    received_at = models.DateTimeField(_("received at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("Pub/Sub message")
        verbose_name_plural = _("Pub/Sub messages")
        constraints = [
            models.UniqueConstraint(fields=["organisation", "message_id"], name="pubsubmessage_unique_id"),
        ]

    def __str__(self) -> str:
        return self.message_id
