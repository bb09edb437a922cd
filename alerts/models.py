"""Email digests: who receives an organisation's digest and when (AlertSubscription), the record of every
period sent or not (DigestDelivery, moved here from fleet with its table), of every recipient's message of a
period (DigestMessage) and of every address that left a subscription (Unsubscription)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from celery.schedules import ParseException, crontab
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from alerts.choices import DeliveryStatus, DigestFrequency, MessageStatus, UnsubscribeVia, Weekday
from fleet.models import Fleet, Organisation


def parse_cron(expression: str) -> crontab:
    """A five-field cron expression (minute hour day-of-month month day-of-week) as Celery parses it.

    Raises ValueError when it is not one. Celery's parser is the one beat itself uses, so what is accepted
    here means the same thing everywhere in FleetPatch.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(gettext("A cron expression has five fields: minute hour day-of-month month day-of-week."))
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        return crontab(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year, day_of_week=day_of_week
        )
    except (ValueError, ParseException) as exc:
        raise ValueError(str(exc)) from None


def _local(day: dt.date, at: dt.time, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, at, tzinfo=zone).astimezone(dt.UTC)


def _split_addresses(text: str) -> list[str]:
    return [part.strip().lower() for part in text.replace(",", "\n").replace(";", "\n").splitlines() if part.strip()]


class AlertSubscription(models.Model):
    """Who receives an organisation's email digest, how often, in which language, and what it reports."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="alert_subscriptions", verbose_name=_("organisation")
    )
    name = models.CharField(_("name"), max_length=200)
    is_active = models.BooleanField(_("active"), default=True)
    fleets = models.ManyToManyField(
        Fleet,
        blank=True,
        related_name="alert_subscriptions",
        verbose_name=_("fleets"),
        help_text=_("Empty: every device of the organisation."),
    )
    # Recipients
    send_to_managers = models.BooleanField(_("send to the managers"), default=True)
    send_to_viewers = models.BooleanField(_("send to the viewers"), default=False)
    extra_recipients = models.TextField(
        _("other addresses"), blank=True, help_text=_("One email address per line, for people without an account.")
    )
    unsubscribed = models.JSONField(
        _("unsubscribed addresses"),
        default=list,
        blank=True,
        help_text=_("Members who followed the unsubscribe link; remove an address to send to it again."),
    )
    # Schedule
    frequency = models.CharField(
        _("frequency"), max_length=10, choices=DigestFrequency.choices, default=DigestFrequency.DAILY
    )
    weekday = models.PositiveSmallIntegerField(
        _("day of the week"), choices=Weekday.choices, default=Weekday.MONDAY, help_text=_("For weekly digests.")
    )
    cron = models.CharField(
        _("cron expression"),
        max_length=100,
        blank=True,
        help_text=_("For cron digests: minute hour day-of-month month day-of-week, in the time zone below."),
    )
    send_at = models.TimeField(_("local send time"), default=dt.time(8, 0))
    time_zone = models.CharField(
        _("time zone"), max_length=64, default="Europe/Paris", help_text=_("An IANA name such as Europe/Paris.")
    )
    language = models.CharField(_("language"), max_length=10, choices=settings.LANGUAGES, default="en")
    # Content
    report_behind = models.BooleanField(_("newly behind"), default=True)
    report_critical = models.BooleanField(_("newly critical"), default=True)
    report_unsupported = models.BooleanField(_("newly unsupported"), default=True)
    report_silent = models.BooleanField(_("newly silent"), default=True)
    report_battery = models.BooleanField(_("batteries due or to replace now"), default=True)
    report_end_of_support = models.BooleanField(_("models reaching end of support"), default=True)
    report_waivers = models.BooleanField(_("waivers expiring"), default=True)
    send_when_empty = models.BooleanField(
        _("send when nothing is new"), default=False, help_text=_("Otherwise a period without news sends nothing.")
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    last_sent_period = models.DateTimeField(_("last period sent"), null=True, blank=True, editable=False)

    class Meta:
        # The table kept its name when the model moved from fleet to alerts: no data was copied.
        db_table = "fleet_alertsubscription"
        ordering = ["organisation__name", "name"]
        verbose_name = _("alert subscription")
        verbose_name_plural = _("alert subscriptions")
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "name"],
                name="alertsubscription_unique_name",
                violation_error_message=_("This organisation already has an alert subscription with this name."),
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    @property
    def extra_addresses(self) -> list[str]:
        return _split_addresses(self.extra_recipients)

    @property
    def reported_statuses(self) -> list[str]:
        """The compliance statuses whose newcomers this digest lists, worst last."""
        flags = {
            "behind": self.report_behind,
            "critical": self.report_critical,
            "unsupported": self.report_unsupported,
            "silent": self.report_silent,
        }
        return [status for status, wanted in flags.items() if wanted]

    def clean(self) -> None:
        errors: dict[str, str] = {}
        try:
            zoneinfo.ZoneInfo(self.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            errors["time_zone"] = gettext("Unknown time zone %(zone)r: use an IANA name such as Europe/Paris.") % {
                "zone": self.time_zone
            }
        if self.frequency == DigestFrequency.CRON:
            try:
                parse_cron(self.cron)
            except ValueError as exc:
                errors["cron"] = gettext("Not a valid cron expression: %(error)s") % {"error": exc}
        for address in self.extra_addresses:
            try:
                validate_email(address)
            except ValidationError:
                errors["extra_recipients"] = gettext("%(address)r is not an email address.") % {"address": address}
                break
        if errors:
            raise ValidationError(errors)

    def latest_occurrence(self, at: dt.datetime) -> dt.datetime | None:
        """The latest scheduled send moment at or before ``at`` (aware, UTC), in the subscription's own time zone.

        Local wall-clock times follow daylight saving time: 08:00 in Europe/Paris is 07:00 UTC in winter and
        06:00 UTC in summer. None when a cron expression matches nothing in the past year.
        """
        zone = self.zone
        local_now = at.astimezone(zone)
        if self.frequency == DigestFrequency.CRON:
            return self._latest_cron_occurrence(local_now, zone)
        day = local_now.date()
        if self.frequency == DigestFrequency.WEEKLY:
            day -= dt.timedelta(days=(day.weekday() - self.weekday) % 7)
        step = dt.timedelta(days=7 if self.frequency == DigestFrequency.WEEKLY else 1)
        candidate = _local(day, self.send_at, zone)
        if candidate > at:
            candidate = _local(day - step, self.send_at, zone)
        return candidate

    def _latest_cron_occurrence(self, local_now: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime | None:
        schedule = parse_cron(self.cron)
        times = sorted((dt.time(hour, minute) for hour in schedule.hour for minute in schedule.minute), reverse=True)
        at = local_now.astimezone(dt.UTC)
        # Like Celery's crontab, a day must match both the day of the month and the day of the week.
        for back in range(367):
            day = local_now.date() - dt.timedelta(days=back)
            cron_weekday = (day.weekday() + 1) % 7  # cron counts from Sunday = 0
            if (
                day.month not in schedule.month_of_year
                or day.day not in schedule.day_of_month
                or cron_weekday not in schedule.day_of_week
            ):
                continue
            for moment in times:
                candidate = _local(day, moment, zone)
                if candidate <= at:
                    return candidate
        return None


class DigestDelivery(models.Model):
    """One period of one subscription: inserted once (its unique key), claimed by one worker, then settled."""

    subscription = models.ForeignKey(
        AlertSubscription, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("subscription")
    )
    period = models.DateTimeField(_("period"), help_text=_("The scheduled send moment this digest stands for."))
    status = models.CharField(
        _("status"), max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.CLAIMED
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    claimed_at = models.DateTimeField(_("claimed by a worker at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    window_start = models.DateTimeField(_("changes after"), null=True, blank=True)
    window_end = models.DateTimeField(_("changes until"), null=True, blank=True)
    recipients = models.JSONField(_("recipients"), default=list, blank=True)
    subject = models.CharField(_("subject"), max_length=255, blank=True)
    error = models.TextField(_("error"), blank=True)
    counts = models.JSONField(
        _("counts"), default=dict, blank=True, help_text=_("Devices by status when built; the next digest compares.")
    )

    class Meta:
        db_table = "fleet_digestdelivery"
        ordering = ["-period"]
        verbose_name = _("digest delivery")
        verbose_name_plural = _("digest deliveries")
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "period"],
                name="digestdelivery_once_per_period",
                violation_error_message=_("This period of this subscription already has a delivery."),
            )
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="digestdelivery_status_idx")]

    def __str__(self) -> str:
        return f"{self.subscription} @ {self.period:%Y-%m-%d %H:%M} ({self.get_status_display()})"


class DigestMessage(models.Model):
    """One recipient's message of one period: inserted once per (delivery, address), so once per (subscription,
    period, recipient), claimed before it is handed to the SMTP server, then settled."""

    delivery = models.ForeignKey(
        DigestDelivery, on_delete=models.CASCADE, related_name="messages", verbose_name=_("delivery")
    )
    address = models.EmailField(_("address"), max_length=254)
    status = models.CharField(_("status"), max_length=20, choices=MessageStatus.choices, default=MessageStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    claimed_at = models.DateTimeField(_("claimed by a worker at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        ordering = ["delivery", "address"]
        verbose_name = _("digest message")
        verbose_name_plural = _("digest messages")
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "address"],
                name="digestmessage_once_per_recipient",
                violation_error_message=_("This recipient already has a message for this period."),
            )
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.get_status_display()})"


class Unsubscription(models.Model):
    """One address leaving one subscription: who, when, and which way (one-click, the page, the admin)."""

    subscription = models.ForeignKey(
        AlertSubscription, on_delete=models.CASCADE, related_name="unsubscriptions", verbose_name=_("subscription")
    )
    address = models.EmailField(_("address"), max_length=254)
    at = models.DateTimeField(_("at"), default=timezone.now)
    via = models.CharField(_("via"), max_length=20, choices=UnsubscribeVia.choices)
    link_signed_at = models.DateTimeField(
        _("link signed at"), null=True, blank=True, help_text=_("When the link that was followed was made.")
    )
    client_address = models.GenericIPAddressField(_("client address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=255, blank=True)

    class Meta:
        ordering = ["-at"]
        verbose_name = _("unsubscription")
        verbose_name_plural = _("unsubscriptions")
        indexes = [models.Index(fields=["subscription", "-at"], name="unsubscription_recent_idx")]

    def __str__(self) -> str:
        return f"{self.address} @ {self.at:%Y-%m-%d %H:%M} ({self.get_via_display()})"
