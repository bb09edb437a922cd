"""Tenants and people: organisations, their fleets, members, compliance policies and API clients."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import zoneinfo

from celery.schedules import ParseException, crontab
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, validate_email
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from fleet.choices import DeliveryStatus, DigestFrequency, Role, Scope, Weekday


class Organisation(models.Model):
    """The tenant: every device, fleet, policy and token belongs to exactly one organisation."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    slug = models.SlugField(_("slug"), max_length=100, unique=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("organisation")
        verbose_name_plural = _("organisations")

    def __str__(self) -> str:
        return self.name


class Fleet(models.Model):
    """A named group of an organisation's devices: a region, a unit, a site."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="fleets", verbose_name=_("organisation")
    )
    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=100)

    class Meta:
        ordering = ["organisation__name", "name"]
        verbose_name = _("fleet")
        verbose_name_plural = _("fleets")
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "slug"],
                name="fleet_unique_slug",
                violation_error_message=_("This organisation already has a fleet with this slug."),
            ),
            models.UniqueConstraint(
                fields=["organisation", "name"],
                name="fleet_unique_name",
                violation_error_message=_("This organisation already has a fleet with this name."),
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's role in one organisation; it is what scopes the admin to that organisation."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("user")
    )
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("organisation")
    )
    role = models.CharField(_("role"), max_length=20, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        ordering = ["organisation__name", "user__username"]
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organisation"],
                name="membership_unique_user",
                violation_error_message=_("This user is already a member of this organisation."),
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.organisation} ({self.get_role_display()})"


def _days(verbose_name: str, default: int, help_text: str) -> models.PositiveIntegerField:
    return models.PositiveIntegerField(
        verbose_name, default=default, validators=[MinValueValidator(1)], help_text=help_text
    )


class CompliancePolicy(models.Model):
    """Thresholds for an organisation, or for one of its fleets (a fleet's policy wins over its organisation's)."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="policies", verbose_name=_("organisation")
    )
    fleet = models.OneToOneField(
        Fleet,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="policy",
        verbose_name=_("fleet"),
        help_text=_("Empty: the organisation's default policy."),
    )
    grace_days = _days(_("grace (days)"), 14, _("Time allowed to install a new build before a device is behind."))
    max_patch_age_days = _days(
        _("maximum patch age (days)"), 90, _("A security patch level older than this makes a device critical.")
    )
    max_silence_days = _days(_("maximum silence (days)"), 30, _("No check-in for this long makes a device silent."))
    battery_max_age_days = _days(_("battery maximum age (days)"), 730, _("A battery older than this is due."))
    battery_min_health_pct = models.PositiveSmallIntegerField(
        _("battery minimum health (%)"),
        default=80,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text=_("A battery below this health must be replaced now."),
    )
    eos_warning_days = _days(
        _("end-of-support warning (days)"),
        180,
        _("Models whose security support ends within this many days are flagged."),
    )

    class Meta:
        verbose_name = _("compliance policy")
        verbose_name_plural = _("compliance policies")
        constraints = [
            models.UniqueConstraint(
                fields=["organisation"],
                condition=Q(fleet__isnull=True),
                name="policy_one_default_per_organisation",
                violation_error_message=_("This organisation already has a default policy."),
            ),
            models.CheckConstraint(
                condition=Q(battery_min_health_pct__gte=1, battery_min_health_pct__lte=100),
                name="policy_battery_health_is_a_percentage",
                violation_error_message=_("Battery health is a percentage between 1 and 100."),
            ),
        ]

    def __str__(self) -> str:
        return (
            str(self.fleet) if self.fleet_id else _("%(organisation)s (default)") % {"organisation": self.organisation}
        )

    def clean(self) -> None:
        if self.fleet_id and self.organisation_id and self.fleet.organisation_id != self.organisation_id:
            raise ValidationError({"fleet": _("This fleet belongs to another organisation.")})


TOKEN_PREFIX_LENGTH = 8


def hash_token(token: str) -> str:
    """Tokens are 256-bit random strings, so a fast hash is enough: there is nothing to brute-force."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiClient(models.Model):
    """An MDM's credentials: one organisation, some scopes, a token stored only as its hash."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="api_clients", verbose_name=_("organisation")
    )
    name = models.CharField(_("name"), max_length=100)
    scopes = models.JSONField(_("scopes"), default=list, help_text=_("Any of: read, report, enrol, catalogue."))
    token_prefix = models.CharField(
        _("token prefix"), max_length=TOKEN_PREFIX_LENGTH, editable=False, help_text=_("Identifies a token in logs.")
    )
    token_hash = models.CharField(_("token hash"), max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["organisation__name", "name"]
        verbose_name = _("API client")
        verbose_name_plural = _("API clients")
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "name"],
                name="apiclient_unique_name",
                violation_error_message=_("This organisation already has an API client with this name."),
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.token_prefix}…)"

    @staticmethod
    def generate_token() -> str:
        return secrets.token_urlsafe(32)

    def set_token(self, token: str) -> None:
        self.token_prefix = token[:TOKEN_PREFIX_LENGTH]
        self.token_hash = hash_token(token)

    def clean(self) -> None:
        valid = set(Scope.values)
        if not isinstance(self.scopes, list) or not all(isinstance(s, str) for s in self.scopes):
            raise ValidationError({"scopes": _("Scopes are a list of names.")})
        unknown = sorted(set(self.scopes) - valid)
        if unknown:
            raise ValidationError(
                {
                    "scopes": _("Unknown scopes: %(unknown)s. Valid: %(valid)s.")
                    % {"unknown": ", ".join(unknown), "valid": ", ".join(Scope.values)}
                }
            )

    def is_active_at(self, moment: dt.datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or moment < self.expires_at)


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
