"""The software catalogue: manufacturers, device models with their support dates, and OS builds."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from common.text import fold_key
from updates.choices import Channel


class Manufacturer(models.Model):
    """A maker of devices (Crosscall, Samsung, Zebra...)."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    slug = models.SlugField(_("slug"), max_length=100, unique=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("manufacturer")
        verbose_name_plural = _("manufacturers")

    def __str__(self) -> str:
        return self.name


class ModelNames:
    """Which model a name means, under the one rule every path uses (check-ins, enrolment, the API's
    ``model`` fields, imports), for many names at once: the catalogue's names are read once.

    A name is a model's "Manufacturer Model" name, its name alone, or its slug, compared with case,
    accents, spaces and dashes ignored ("COREZ5" = "Core-Z5" = "crosscall core z5", see
    :func:`common.text.fold_key`). A manufacturer, when given, narrows the candidates to its models (by
    its name or slug, folded likewise) if it names any of them. A name that several models share is
    ambiguous: :meth:`resolve` gives None, :meth:`candidates` shows them.
    """

    def __init__(self, queryset: models.QuerySet[DeviceModel]) -> None:
        self._folded: dict[str, set[int]] = defaultdict(set)
        self._maker_of: dict[int, set[str]] = {}
        rows = queryset.values_list("pk", "name", "slug", "manufacturer__name", "manufacturer__slug")
        for pk, name, slug, maker, maker_slug in rows:
            for text in (f"{maker} {name}", name, slug):
                self._folded[fold_key(text)].add(pk)
            self._maker_of[pk] = {fold_key(maker), fold_key(maker_slug)}

    def candidates(self, text: str, manufacturer: str = "") -> set[int]:
        """Ids of every model ``text`` may mean (empty: none; more than one: ambiguous)."""
        text = str(text or "").strip()
        if not text:
            return set()
        found = self._folded.get(fold_key(text), set())
        maker = fold_key(manufacturer) if manufacturer else ""
        if maker:
            narrowed = {pk for pk in found if maker in self._maker_of[pk]}
            return narrowed or found
        return set(found)

    def resolve(self, text: str, manufacturer: str = "") -> int | None:
        """The id of the one model ``text`` means, or None (unknown or ambiguous)."""
        found = self.candidates(text, manufacturer)
        return next(iter(found)) if len(found) == 1 else None

    def resolve_many(self, texts: Iterable[str]) -> dict[str, int | None]:
        return {text: self.resolve(text) for text in texts}


class DeviceModelQuerySet(models.QuerySet):
    def names(self) -> ModelNames:
        """The resolver of model names over these models, for resolving many names at once."""
        return ModelNames(self)

    def resolve(self, text: str, manufacturer: str = "") -> DeviceModel | None:
        """The model ``text`` means ("Crosscall Core-Z5", "Core-Z5", "core-z5", "COREZ5"), or None when
        it names no model or several (see :class:`ModelNames`)."""
        pk = self.names().resolve(text, manufacturer)
        return None if pk is None else self.select_related("manufacturer").get(pk=pk)


class DeviceModel(models.Model):
    """One model of handset and the dates its manufacturer supports it until."""

    manufacturer = models.ForeignKey(
        Manufacturer, on_delete=models.PROTECT, related_name="models", verbose_name=_("manufacturer")
    )
    name = models.CharField(_("name"), max_length=150)
    slug = models.SlugField(_("slug"), max_length=150)
    launched_on = models.DateField(_("launched on"), null=True, blank=True)
    security_support_until = models.DateField(
        _("security updates until"),
        null=True,
        blank=True,
        help_text=_("Last day the manufacturer ships security updates (endoflife.date's 'eol'). Empty: not announced."),
    )
    os_support_until = models.DateField(
        _("OS upgrades until"),
        null=True,
        blank=True,
        help_text=_("Last day of Android version upgrades (endoflife.date's 'eoas'). Empty: not announced."),
    )

    objects = DeviceModelQuerySet.as_manager()

    class Meta:
        ordering = ["manufacturer__name", "name"]
        verbose_name = _("device model")
        verbose_name_plural = _("device models")
        constraints = [
            models.UniqueConstraint(fields=["manufacturer", "name"], name="devicemodel_unique_name"),
            models.UniqueConstraint(fields=["manufacturer", "slug"], name="devicemodel_unique_slug"),
            models.CheckConstraint(
                condition=Q(os_support_until__isnull=True)
                | Q(launched_on__isnull=True)
                | Q(os_support_until__gte=models.F("launched_on")),
                name="devicemodel_os_support_after_launch",
                violation_error_message=_("OS upgrades cannot end before the model is launched."),
            ),
            models.CheckConstraint(
                condition=Q(security_support_until__isnull=True)
                | Q(launched_on__isnull=True)
                | Q(security_support_until__gte=models.F("launched_on")),
                name="devicemodel_security_support_after_launch",
                violation_error_message=_("Security updates cannot end before the model is launched."),
            ),
        ]
        indexes = [models.Index(fields=["security_support_until"], name="devicemodel_eos_idx")]

    def __str__(self) -> str:
        return f"{self.manufacturer} {self.name}"

    def is_supported_on(self, day: dt.date) -> bool:
        return self.security_support_until is None or day <= self.security_support_until


class OSBuildQuerySet(models.QuerySet):
    def visible_to(self, organisation: models.Model | int) -> OSBuildQuerySet:
        """The builds an organisation may run: the manufacturers' public builds and its own private ones
        (another organisation's in-house builds are never visible)."""
        organisation_id = getattr(organisation, "pk", organisation)
        return self.filter(Q(organisation__isnull=True) | Q(organisation_id=organisation_id))

    def private_first(self) -> OSBuildQuerySet:
        """The organisation's private build before a public one of the same number."""
        return self.order_by(models.F("organisation_id").desc(nulls_last=True))


class OSBuild(models.Model):
    """One build of the OS for one model, published by its manufacturer or privately by an organisation."""

    model = models.ForeignKey(DeviceModel, on_delete=models.CASCADE, related_name="builds", verbose_name=_("model"))
    build_number = models.CharField(_("build number"), max_length=100)
    android_version = models.CharField(_("Android version"), max_length=20, blank=True)
    security_patch_level = models.DateField(_("security patch level"))
    released_at = models.DateTimeField(_("released at"))
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices, default=Channel.STABLE)
    organisation = models.ForeignKey(
        "fleet.Organisation",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="private_builds",
        verbose_name=_("organisation"),
        help_text=_("Set for a private build of an in-house OS; empty for the manufacturer's public build."),
    )
    is_revoked = models.BooleanField(
        _("revoked"), default=False, help_text=_("A revoked (pulled) build is never the latest build.")
    )
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    notes = models.TextField(_("notes"), blank=True)

    objects = OSBuildQuerySet.as_manager()

    class Meta:
        ordering = ["model", "-released_at"]
        verbose_name = _("OS build")
        verbose_name_plural = _("OS builds")
        constraints = [
            # NULL organisation means "public": two partial constraints make it unique too,
            # on SQLite and on PostgreSQL alike (NULLs are otherwise distinct).
            models.UniqueConstraint(
                fields=["model", "build_number"],
                condition=Q(organisation__isnull=True),
                name="osbuild_unique_public_build",
                violation_error_message=_("This model already has a public build with this number."),
            ),
            models.UniqueConstraint(
                fields=["model", "build_number", "organisation"],
                condition=Q(organisation__isnull=False),
                name="osbuild_unique_private_build",
                violation_error_message=_("This organisation already has a build of this model with this number."),
            ),
        ]
        indexes = [
            # "Latest build for (model, channel)" and "builds released after X".
            models.Index(fields=["model", "channel", "released_at"], name="osbuild_latest_idx"),
            models.Index(fields=["build_number"], name="osbuild_number_idx"),
        ]

    def __str__(self) -> str:
        return self.build_number


class BuildPin(models.Model):
    """An organisation's validated target build for one model; compliance is measured against it."""

    organisation = models.ForeignKey(
        "fleet.Organisation", on_delete=models.CASCADE, related_name="build_pins", verbose_name=_("organisation")
    )
    model = models.ForeignKey(DeviceModel, on_delete=models.CASCADE, related_name="pins", verbose_name=_("model"))
    build = models.ForeignKey(OSBuild, on_delete=models.CASCADE, related_name="pins", verbose_name=_("pinned build"))
    pinned_at = models.DateTimeField(
        _("pinned at"),
        help_text=_("Devices get the grace period from this moment (or the build's release, if later)."),
    )
    pinned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("pinned by"),
    )
    note = models.CharField(_("note"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("build pin")
        verbose_name_plural = _("build pins")
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "model"],
                name="buildpin_one_per_model",
                violation_error_message=_("This organisation already pins a build for this model."),
            )
        ]

    def __str__(self) -> str:
        return f"{self.model} → {self.build}"

    def clean(self) -> None:
        if self.build_id and self.model_id and self.build.model_id != self.model_id:
            raise ValidationError({"build": _("This build is for another model.")})
        if self.build_id and self.build.organisation_id not in (None, self.organisation_id):
            raise ValidationError({"build": _("This build belongs to another organisation.")})
        if self.build_id and self.build.is_revoked:
            raise ValidationError({"build": _("A revoked build cannot be pinned.")})
