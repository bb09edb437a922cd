from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class DigestFrequency(models.TextChoices):
    DAILY = "daily", _("Daily")
    WEEKLY = "weekly", _("Weekly")
    CRON = "cron", _("Cron expression")


class Weekday(models.IntegerChoices):
    MONDAY = 0, _("Monday")
    TUESDAY = 1, _("Tuesday")
    WEDNESDAY = 2, _("Wednesday")
    THURSDAY = 3, _("Thursday")
    FRIDAY = 4, _("Friday")
    SATURDAY = 5, _("Saturday")
    SUNDAY = 6, _("Sunday")


class DeliveryStatus(models.TextChoices):
    """The life of one digest period: claimed by the dispatcher, held by one worker while it sends, then settled."""

    CLAIMED = "claimed", _("Claimed, waiting for a worker")
    SENDING = "sending", _("Being sent")
    RETRYING = "retrying", _("Send failed, will retry")
    SENT = "sent", _("Sent")
    PARTLY_SENT = "partly_sent", _("Sent to some recipients only")
    FAILED = "failed", _("Failed")
    SKIPPED_EMPTY = "skipped_empty", _("Skipped: nothing new")


class MessageStatus(models.TextChoices):
    """The life of one recipient's message of a period: waiting, held by the worker while it talks to the SMTP
    server, then settled. Claimed before sending, like its period."""

    PENDING = "pending", _("Waiting to be sent")
    SENDING = "sending", _("Being sent")
    RETRYING = "retrying", _("Refused, will retry")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    UNSUBSCRIBED = "unsubscribed", _("Not sent: unsubscribed meanwhile")


class UnsubscribeVia(models.TextChoices):
    """Which way an address left a subscription."""

    ONE_CLICK = "one_click", _("One-click (mail client)")
    PAGE = "page", _("Unsubscribe page")
    ADMIN = "admin", _("Admin")
