"""The software catalogue: manufacturers, device models with their support dates, and OS builds."""

from __future__ import annotations

import datetime as dt
import difflib
from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext
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


class ManufacturerAlias(models.Model):
    """Another spelling of a manufacturer's name, as MDMs report it ("Zebra" for "Zebra Technologies")."""

    manufacturer = models.ForeignKey(
        Manufacturer, on_delete=models.CASCADE, related_name="aliases", verbose_name=_("manufacturer")
    )
    name = models.CharField(_("alias"), max_length=100)
    # The name folded (common.text.fold_key): what the resolver compares, unique across manufacturers.
    key = models.CharField(_("folded alias"), max_length=100, unique=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("manufacturer alias")
        verbose_name_plural = _("manufacturer aliases")

    def __str__(self) -> str:
        return self.name

    def save(self, *args: object, **kwargs: object) -> None:
        self.key = fold_key(self.name)
        super().save(*args, **kwargs)

    def clean(self) -> None:
        self.key = fold_key(self.name)
        if not self.key:
            raise ValidationError({"name": _("An alias needs at least one letter or digit.")})
        others = Manufacturer.objects.exclude(pk=self.manufacturer_id).values_list("name", "slug")
        if any(self.key in (fold_key(name), fold_key(slug)) for name, slug in others):
            raise ValidationError({"name": _("This is the name of another manufacturer.")})
        if ManufacturerAlias.objects.exclude(pk=self.pk).filter(key=self.key).exists():
            raise ValidationError({"name": _("This alias already names a manufacturer.")})


class ModelNames:
    """Which model a name means, under the one rule every path uses (check-ins, enrolment, the API's
    ``model`` fields, imports, the linking of devices that reported an unknown model), for many names at
    once: the catalogue's names, its aliases included, are read in one SELECT.

    A model's names are its name, its slug and its aliases (model codes such as "SM-G556B", codenames,
    marketing names), each alone or after one of its manufacturer's names (its name, slug or aliases:
    "Zebra TC21" = "Zebra Technologies TC21"). Names are compared with case, accents, spaces and
    punctuation ignored ("COREZ5" = "Core-Z5" = "crosscall core z5" = "core.z5", see
    :func:`common.text.fold_key`). A manufacturer, when given, narrows the candidates to its models if it
    names any of them. A name that several models share is ambiguous: :meth:`resolve` gives None,
    :meth:`candidates` shows them, and :meth:`suggest` offers the nearest names for an unknown one.
    """

    def __init__(self, queryset: models.QuerySet[DeviceModel]) -> None:
        self._folded: dict[str, set[int]] = defaultdict(set)
        self._maker_of: dict[int, set[str]] = {}
        self._label: dict[int, str] = {}
        self._suggestions: dict[str, list[str]] = {}
        # One SELECT: the models, then every model alias and every manufacturer alias, as rows of one shape
        # (kind, owner, name or key, slug, manufacturer, its name, its slug).
        text, number = models.CharField(), models.IntegerField()

        def blank(value: object = "") -> models.Value:
            return models.Value(value, output_field=number if isinstance(value, int) else text)

        combined = (
            queryset.order_by()
            .values_list(
                blank("model"), "pk", "name", "slug", "manufacturer_id", "manufacturer__name", "manufacturer__slug"
            )
            .union(
                ModelAlias.objects.order_by().values_list(
                    blank("alias"), "model_id", "key", blank(), blank(0), blank(), blank()
                ),
                ManufacturerAlias.objects.order_by().values_list(
                    blank("maker"), "manufacturer_id", "key", blank(), blank(0), blank(), blank()
                ),
                all=True,
            )
        )
        rows, aliases = [], []
        for row in combined:
            (rows if row[0] == "model" else aliases).append(row)
        model_keys: dict[int, set[str]] = {}
        maker_keys: dict[int, set[str]] = defaultdict(set)
        for _kind, pk, name, slug, maker_id, maker, maker_slug in rows:
            model_keys[pk] = {fold_key(name), fold_key(slug)}
            maker_keys[maker_id] |= {fold_key(maker), fold_key(maker_slug)}
            self._label[pk] = f"{maker} {name}"
        for kind, owner, key, *_rest in aliases:
            if kind == "alias" and owner in model_keys:
                model_keys[owner].add(key)
            elif kind == "maker" and owner in maker_keys:
                maker_keys[owner].add(key)
        for _kind, pk, _name, _slug, maker_id, _maker, _maker_slug in rows:
            makers = maker_keys[maker_id] - {""}
            self._maker_of[pk] = makers
            for key in model_keys[pk] - {""}:
                self._folded[key].add(pk)
                for maker in makers:
                    self._folded[maker + key].add(pk)

    def candidates(self, text: str, manufacturer: str = "") -> set[int]:
        """Ids of every model ``text`` may mean (empty: none; more than one: ambiguous)."""
        text = str(text or "").strip()
        if not text:
            return set()
        found = self._folded.get(fold_key(text), set())
        maker = fold_key(manufacturer) if manufacturer else ""
        if maker:
            narrowed = {pk for pk in found if maker in self._maker_of[pk]}
            return narrowed or set(found)
        return set(found)

    def resolve(self, text: str, manufacturer: str = "") -> int | None:
        """The id of the one model ``text`` means, or None (unknown or ambiguous)."""
        found = self.candidates(text, manufacturer)
        return next(iter(found)) if len(found) == 1 else None

    def resolve_first(self, texts: Iterable[str]) -> int | None:
        """The model the first of ``texts`` (best first: "Zebra TC21", "TC21") that names one means."""
        return next((pk for text in texts if (pk := self.resolve(text)) is not None), None)

    def resolve_many(self, texts: Iterable[str]) -> dict[str, int | None]:
        return {text: self.resolve(text) for text in texts}

    def label(self, pk: int) -> str:
        """A model's full name ("Zebra Technologies TC21")."""
        return self._label[pk]

    def did_you_mean(self, *texts: str) -> str:
        """ "Did you mean Zebra Technologies TC21?" for unknown names, or "" when nothing is near."""
        found = list(dict.fromkeys(label for text in texts for label in self.suggest(text)))[:3]
        if not found:
            return ""
        return gettext("Did you mean %(names)s?") % {"names": gettext(" or ").join(found)}

    def suggest(self, text: str, limit: int = 3) -> list[str]:
        """The full names of the models nearest to an unknown name, nearest first (difflib over the folded
        names, remembered per name: a batch of a thousand reports of one unknown model computes it once)."""
        key = fold_key(str(text or ""))
        if key not in self._suggestions:
            found: list[str] = []
            for near in difflib.get_close_matches(key, self._folded, n=limit * 3, cutoff=0.6) if key else []:
                for pk in sorted(self._folded[near]):
                    if self._label[pk] not in found:
                        found.append(self._label[pk])
            self._suggestions[key] = found[:limit]
        return self._suggestions[key]


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


class ModelAlias(models.Model):
    """Another name of a device model: a model code ("SM-G556B", "TC21"), a codename ("bullhead"), a
    marketing name. Unique per model; a name two manufacturers' models share is ambiguous without the
    manufacturer, and refused between two models of one manufacturer."""

    model = models.ForeignKey(DeviceModel, on_delete=models.CASCADE, related_name="aliases", verbose_name=_("model"))
    name = models.CharField(_("alias"), max_length=150)
    # The name folded (common.text.fold_key): what the resolver compares.
    key = models.CharField(_("folded alias"), max_length=150, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("model alias")
        verbose_name_plural = _("model aliases")
        constraints = [
            models.UniqueConstraint(
                fields=["model", "key"],
                name="modelalias_unique_key",
                violation_error_message=_("This model already has this alias."),
            )
        ]
        indexes = [models.Index(fields=["key"], name="modelalias_key_idx")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: object, **kwargs: object) -> None:
        self.key = fold_key(self.name)
        super().save(*args, **kwargs)

    def clean(self) -> None:
        self.key = fold_key(self.name)
        if not self.key:
            raise ValidationError({"name": _("An alias needs at least one letter or digit.")})
        if self.model_id is None:
            return
        siblings = DeviceModel.objects.filter(manufacturer_id=self.model.manufacturer_id).exclude(pk=self.model_id)
        names = siblings.names()
        if names.candidates(self.name):
            raise ValidationError(
                {
                    "name": _("This already names another model of this manufacturer: %(models)s.")
                    % {"models": ", ".join(sorted(names.label(pk) for pk in names.candidates(self.name)))}
                }
            )


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
