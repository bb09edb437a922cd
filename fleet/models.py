"""Tenants and people: organisations, their fleets, members, compliance policies and API clients."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from fleet.choices import Role, Scope


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

    use_observed_builds = models.BooleanField(
        _("measure against observed builds"),
        default=True,
        help_text=_(
            "A model without any catalogue build for the organisation is measured against the newest build "
            "its devices report (see the minimum below)."
        ),
    )
    observed_build_min_devices = models.PositiveIntegerField(
        _("observed build: minimum devices"),
        default=3,
        validators=[MinValueValidator(1)],
        help_text=_("An observed build is a target once at least this many of the organisation's devices run it."),
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
    # Google Pub/Sub push (devices.api.ingest.AmapiPushView): Pub/Sub cannot send a FleetPatch token, so the
    # client has a push endpoint of its own, named by a random public id, authenticated by a secret in its URL
    # (stored as its hash) or by Google's signed OIDC token for the service account below.
    push_id = models.CharField(
        _("push endpoint id"),
        max_length=32,
        unique=True,
        null=True,
        blank=True,
        editable=False,
        help_text=_("Names the client's Pub/Sub push endpoint; empty while push is not enabled."),
    )
    push_secret_hash = models.CharField(_("push secret hash"), max_length=64, blank=True, editable=False)
    push_service_account = models.EmailField(
        _("push service account"),
        blank=True,
        help_text=_(
            "The service account whose OIDC token Pub/Sub sends (--push-auth-service-account); "
            "empty: OIDC tokens are refused."
        ),
    )
    push_audience = models.CharField(
        _("push token audience"),
        max_length=500,
        blank=True,
        help_text=_("The OIDC token's audience (--push-auth-token-audience); empty: the push endpoint's URL."),
    )

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

    def push_url(self, secret: str | None = None) -> str:
        """The full URL of the client's Pub/Sub push endpoint (``SITE_URL``), with ``?token=`` when given the
        clear secret; "" while push is not enabled."""
        if not self.push_id:
            return ""
        url = settings.SITE_URL + reverse("api-ingest-amapi-push", kwargs={"push_id": self.push_id})
        return f"{url}?{urlencode({'token': secret})}" if secret else url

    @property
    def push_token_audience(self) -> str:
        """The audience an OIDC token must name: the configured one, else the push endpoint's URL."""
        return self.push_audience or self.push_url()
