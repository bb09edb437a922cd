"""Writes to the catalogue. Every change that can move a device's compliance enqueues a recompute of the
affected model once the transaction commits, never before (a worker must see the committed change)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext

from common.tasks import enqueue_on_commit
from common.text import fold_key
from fleet.models import Organisation
from updates import catalogue
from updates.choices import Channel
from updates.models import BuildPin, DeviceModel, Manufacturer, ManufacturerAlias, ModelAlias, OSBuild

# The devices' recompute lives above the catalogue (devices.compliance.tasks): named, never imported.
RECOMPUTE_MODEL_TASK = "updates.recompute_model"


def enqueue_model_recompute(*, model_id: int, reason: str, eta: dt.datetime | None = None) -> None:
    """After commit (and no earlier than ``eta``), re-evaluates the devices of one model (and links those that
    reported a build the catalogue now has). With the broker down the change is committed anyway: the next
    sweep catches up."""
    enqueue_on_commit(RECOMPUTE_MODEL_TASK, model_id, reason, catch_up="the next sweep", eta=eta)


@transaction.atomic
def build_publish(
    *,
    model: DeviceModel,
    build_number: str,
    security_patch_level: dt.date,
    released_at: dt.datetime,
    android_version: str = "",
    channel: str = Channel.STABLE,
    organisation: Organisation | None = None,
    notes: str = "",
) -> OSBuild:
    """Adds a build to the catalogue and re-evaluates the model's devices after commit (which links those
    that already reported this build number to it)."""
    build = OSBuild(
        model=model,
        build_number=build_number,
        security_patch_level=security_patch_level,
        released_at=released_at,
        android_version=android_version,
        channel=channel,
        organisation=organisation,
        notes=notes,
    )
    build.full_clean()
    build.save()
    enqueue_model_recompute(model_id=model.pk, reason=f"build {build_number} published")
    if released_at > timezone.now():
        # Not a target before its release: the model is re-evaluated again when it comes (the periodic sweep,
        # which re-evaluates every device, would also catch it within its interval).
        enqueue_model_recompute(model_id=model.pk, reason=f"build {build_number} released", eta=released_at)
    return build


@transaction.atomic
def build_update(*, build: OSBuild, previous_model_id: int | None = None, **changes: object) -> OSBuild:
    """Corrects a published build (its number, patch level, release date, channel, notes...) and
    re-evaluates the devices of its model, and of the model it belonged to if that changed."""
    for field, value in changes.items():
        setattr(build, field, value)
    build.full_clean()
    build.save(update_fields=[*changes] or None)
    for model_id in sorted({build.model_id, previous_model_id} - {None}):
        enqueue_model_recompute(model_id=model_id, reason=f"build {build.build_number} changed")
    return build


@transaction.atomic
def build_revoke(*, build: OSBuild, now: dt.datetime | None = None) -> OSBuild:
    """Pulls a build: it is never the target again, and devices running it must move off it."""
    if not build.is_revoked:
        build.is_revoked = True
        build.revoked_at = now or timezone.now()
        build.save(update_fields=["is_revoked", "revoked_at"])
        # A pin on a revoked build is ignored by the engine; it stays for the record.
        enqueue_model_recompute(model_id=build.model_id, reason=f"build {build.build_number} revoked")
    return build


@transaction.atomic
def build_pin(
    *,
    organisation: Organisation,
    build: OSBuild,
    pinned_by: AbstractBaseUser | None = None,
    note: str = "",
    now: dt.datetime | None = None,
) -> BuildPin:
    """Makes ``build`` the target of the organisation's devices of its model (replacing any earlier pin)."""
    pin = BuildPin.objects.filter(organisation=organisation, model_id=build.model_id).first() or BuildPin(
        organisation=organisation, model_id=build.model_id
    )
    pin.build = build
    pin.pinned_at = now or timezone.now()
    pin.pinned_by = pinned_by
    pin.note = note
    pin.full_clean()
    pin.save()
    enqueue_model_recompute(model_id=build.model_id, reason=f"build {build.build_number} pinned")
    return pin


@transaction.atomic
def build_pin_update(*, pin: BuildPin, note: str) -> BuildPin:
    """Rewords a pin's note; pinning another build is a new pin (its grace period restarts)."""
    pin.note = note
    pin.full_clean()
    pin.save(update_fields=["note"])
    return pin


@transaction.atomic
def build_unpin(*, organisation: Organisation, model: DeviceModel) -> None:
    if BuildPin.objects.filter(organisation=organisation, model=model).delete()[0]:
        enqueue_model_recompute(model_id=model.pk, reason="pin removed")


def _recompute_models_of(manufacturer: Manufacturer, *, reason: str) -> None:
    for model_id in manufacturer.models.order_by("pk").values_list("pk", flat=True):
        enqueue_model_recompute(model_id=model_id, reason=reason)


@transaction.atomic
def manufacturer_save(*, manufacturer: Manufacturer, changed: Iterable[str] = ()) -> Manufacturer:
    """Adds a manufacturer to the catalogue, or renames one (the operators' job). A new name may be the one
    devices reported: its models then link them (after commit)."""
    manufacturer.full_clean()
    manufacturer.save()
    if {"name", "slug"} & set(changed):
        _recompute_models_of(manufacturer, reason="manufacturer renamed")
    return manufacturer


@transaction.atomic
def manufacturer_alias_add(*, manufacturer: Manufacturer, name: str) -> ManufacturerAlias:
    """Another spelling of a manufacturer ("Zebra" for "Zebra Technologies"); the devices that reported a
    model under it get their model after commit."""
    alias = ManufacturerAlias(manufacturer=manufacturer, name=name.strip())
    alias.full_clean()
    alias.save()
    _recompute_models_of(manufacturer, reason=f"manufacturer alias {alias.name} added")
    return alias


@transaction.atomic
def manufacturer_alias_update(*, alias: ManufacturerAlias, name: str) -> ManufacturerAlias:
    """Corrects a spelling (the admin's inline edits it in place)."""
    alias.name = name.strip()
    alias.full_clean()
    alias.save()
    _recompute_models_of(alias.manufacturer, reason=f"manufacturer alias {alias.name} changed")
    return alias


@transaction.atomic
def manufacturer_alias_remove(*, alias: ManufacturerAlias) -> None:
    """Removes a spelling; devices already linked through it keep their model."""
    alias.delete()


@transaction.atomic
def model_alias_add(*, model: DeviceModel, name: str) -> ModelAlias:
    """Another name of a model (a model code, a codename, a marketing name); the devices that reported it
    get the model after commit, and are re-evaluated."""
    alias = ModelAlias(model=model, name=name.strip())
    alias.full_clean()
    alias.save()
    enqueue_model_recompute(model_id=model.pk, reason=f"alias {alias.name} added")
    return alias


@transaction.atomic
def model_alias_update(*, alias: ModelAlias, name: str) -> ModelAlias:
    """Corrects an alias's spelling (the admin's inline edits it in place)."""
    alias.name = name.strip()
    alias.full_clean()
    alias.save()
    enqueue_model_recompute(model_id=alias.model_id, reason=f"alias {alias.name} changed")
    return alias


@transaction.atomic
def model_alias_remove(*, alias: ModelAlias) -> None:
    """Removes a name; devices already linked through it keep their model."""
    alias.delete()


@transaction.atomic
def model_save(*, model: DeviceModel, changed: Iterable[str] = ()) -> DeviceModel:
    """Adds a model to the catalogue, or changes one (``changed``: the fields edited, as the admin's form
    reports them). After commit, the model's devices are re-evaluated when a support date moved (its end of
    security support makes them "unsupported", or no longer), and a new model or a new name links the
    devices that reported it."""
    created = model.pk is None
    model.full_clean()
    model.save()
    if created or {"security_support_until", "os_support_until", "name", "slug"} & set(changed):
        enqueue_model_recompute(model_id=model.pk, reason="model added" if created else "model changed")
    return model


@dataclasses.dataclass
class ImportResult:
    """What a catalogue import did, per kind of row."""

    models_created: int = 0
    models_updated: int = 0
    models_unchanged: int = 0
    builds_created: int = 0
    builds_updated: int = 0
    builds_unchanged: int = 0
    aliases_created: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)


def _support_date(
    value: dt.date | str | None, *, current: dt.date | None, launched: dt.date | None, today: dt.date
) -> dt.date | None:
    """Resolves endoflife.date's "ended, date not recorded": the date already known if it is past,
    else yesterday (so the model is unsupported from today, and a re-import changes nothing)."""
    if value != catalogue.ENDED:
        return value
    if current is not None and current < today:
        return current
    ended = today - dt.timedelta(days=1)
    return max(ended, launched) if launched else ended


@transaction.atomic
def catalogue_import(
    *,
    entries: catalogue.Catalogue,
    organisation: Organisation | None = None,
    today: dt.date | None = None,
) -> ImportResult:
    """Creates or updates models and builds from parsed entries; re-importing the same file changes nothing.

    Builds are public unless ``organisation`` is given (an in-house OS line). Every model whose support
    dates or builds changed is re-evaluated once, after commit.
    """
    today = today or timezone.now().date()
    result = ImportResult(errors=list(entries.errors), skipped=list(entries.skipped))
    touched: set[int] = set()
    manufacturers: dict[str, Manufacturer] = {}
    models: dict[tuple[str, str], DeviceModel] = {}

    aliases = _CatalogueNames()

    def manufacturer_for(name: str) -> Manufacturer:
        # A manufacturer's alias is the manufacturer: "Zebra" rows go to "Zebra Technologies".
        if name not in manufacturers:
            known = aliases.manufacturer(name)
            manufacturers[name] = (
                known or Manufacturer.objects.get_or_create(slug=slugify(name)[:100], defaults={"name": name})[0]
            )
        return manufacturers[name]

    for entry in entries.models:
        maker = manufacturer_for(entry.manufacturer)
        model = DeviceModel.objects.filter(manufacturer=maker, slug=entry.slug).first()
        created = model is None
        if created:
            model = DeviceModel(manufacturer=maker, slug=entry.slug, name=entry.name)
        values = {
            "name": entry.name,
            "launched_on": entry.launched_on or model.launched_on,
            "security_support_until": _support_date(
                entry.security_support_until,
                current=model.security_support_until,
                launched=entry.launched_on,
                today=today,
            ),
            "os_support_until": _support_date(
                entry.os_support_until, current=model.os_support_until, launched=entry.launched_on, today=today
            ),
        }
        changed = created or any(getattr(model, field) != value for field, value in values.items())
        models[(entry.manufacturer, entry.slug)] = model
        if not changed:
            result.models_unchanged += 1
            continue
        for field, value in values.items():
            setattr(model, field, value)
        try:
            with transaction.atomic():
                model.full_clean(validate_unique=False)
                model.save()
        except (ValidationError, IntegrityError) as error:
            result.errors.append(f"{entry.manufacturer} {entry.name}: {_messages(error)}")
            models.pop((entry.manufacturer, entry.slug))
            continue
        result.models_created += created
        result.models_updated += not created
        # A new model links the devices that reported its name before the catalogue knew it.
        touched.add(model.pk)

    for model in models.values():
        aliases.own(model)  # every model's own names first: an alias may not take another model's name
    for entry in entries.models:
        model = models.get((entry.manufacturer, entry.slug))
        if model is None:
            continue
        for name in entry.manufacturer_aliases:
            added, message = aliases.add_manufacturer_alias(model.manufacturer, name)
            if added:
                result.aliases_created += 1
                touched.update(model.manufacturer.models.values_list("pk", flat=True))
            elif message:
                result.skipped.append(message)
        for name in entry.aliases:
            added, message = aliases.add_model_alias(model, name)
            if added:
                result.aliases_created += 1
                touched.add(model.pk)
            elif message:
                result.skipped.append(message)

    for entry in entries.builds:
        model = models.get((entry.manufacturer, entry.model_slug))
        if model is None:
            continue  # its model row failed and was reported
        build = OSBuild.objects.filter(model=model, build_number=entry.build_number, organisation=organisation).first()
        created = build is None
        if created:
            build = OSBuild(model=model, build_number=entry.build_number, organisation=organisation)
        values = {
            "android_version": entry.android_version,
            "security_patch_level": entry.security_patch_level,
            "released_at": entry.released_at,
            "channel": entry.channel,
            "is_revoked": entry.revoked,
        }
        changed = created or any(getattr(build, field) != value for field, value in values.items())
        if not changed:
            result.builds_unchanged += 1
            continue
        for field, value in values.items():
            setattr(build, field, value)
        if build.is_revoked and build.revoked_at is None:
            build.revoked_at = timezone.now()
        try:
            with transaction.atomic():
                build.full_clean(validate_unique=False)
                build.save()
        except (ValidationError, IntegrityError) as error:
            result.errors.append(f"{model} {entry.build_number}: {_messages(error)}")
            continue
        result.builds_created += created
        result.builds_updated += not created
        touched.add(model.pk)

    for model_id in sorted(touched):
        enqueue_model_recompute(model_id=model_id, reason="catalogue import")
    return result


class _CatalogueNames:
    """The names an import checks its aliases against, read once (the catalogue holds thousands of names,
    not millions): which manufacturer each spelling is, and which model each folded name is, per
    manufacturer. An alias that would name two models of one manufacturer is left out, and said so."""

    def __init__(self) -> None:
        self.makers: dict[str, int] = {}
        for pk, name, slug in Manufacturer.objects.values_list("pk", "name", "slug"):
            self.makers.setdefault(fold_key(name), pk)
            self.makers.setdefault(fold_key(slug), pk)
        for pk, key in ManufacturerAlias.objects.values_list("manufacturer_id", "key"):
            self.makers[key] = pk
        self.models: dict[tuple[int, str], set[int]] = {}
        for pk, maker_id, name, slug in DeviceModel.objects.values_list("pk", "manufacturer_id", "name", "slug"):
            for key in {fold_key(name), fold_key(slug)}:
                self.models.setdefault((maker_id, key), set()).add(pk)
        for pk, maker_id, key in ModelAlias.objects.values_list("model_id", "model__manufacturer_id", "key"):
            self.models.setdefault((maker_id, key), set()).add(pk)

    def manufacturer(self, name: str) -> Manufacturer | None:
        pk = self.makers.get(fold_key(name))
        return None if pk is None else Manufacturer.objects.get(pk=pk)

    def own(self, model: DeviceModel) -> None:
        for key in {fold_key(model.name), fold_key(model.slug)}:
            self.models.setdefault((model.manufacturer_id, key), set()).add(model.pk)

    def add_model_alias(self, model: DeviceModel, name: str) -> tuple[bool, str]:
        name = name.strip()[:150]
        key = fold_key(name)
        owners = self.models.get((model.manufacturer_id, key), set())
        if not key or owners == {model.pk}:
            return False, ""  # the model's own name, or an alias it has
        if owners:
            return False, gettext("%(model)s: alias %(alias)r left out, it already names another model.") % {
                "model": model,
                "alias": name,
            }
        ModelAlias.objects.create(model=model, name=name)
        self.models[(model.manufacturer_id, key)] = {model.pk}
        return True, ""

    def add_manufacturer_alias(self, manufacturer: Manufacturer, name: str) -> tuple[bool, str]:
        name = name.strip()[:100]
        key = fold_key(name)
        owner = self.makers.get(key)
        if not key or owner == manufacturer.pk:
            return False, ""
        if owner is not None:
            return False, gettext("%(manufacturer)s: alias %(alias)r left out, it names another manufacturer.") % {
                "manufacturer": manufacturer,
                "alias": name,
            }
        ManufacturerAlias.objects.create(manufacturer=manufacturer, name=name)
        self.makers[key] = manufacturer.pk
        return True, ""


def _messages(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(error.messages)
    return str(error)
