"""Writes to the catalogue. Every change that can move a device's compliance enqueues a recompute of the
affected model once the transaction commits, never before (a worker must see the committed change)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.text import slugify

from devices.models import Device
from fleet.models import Organisation
from updates import catalogue
from updates.choices import Channel
from updates.enqueue import enqueue_on_commit
from updates.models import BuildPin, DeviceModel, Manufacturer, OSBuild


def enqueue_model_recompute(*, model_id: int, reason: str) -> None:
    from updates.tasks import recompute_model

    # With the broker down the change is committed anyway: the next sweep re-evaluates every device.
    enqueue_on_commit(recompute_model, model_id, reason, catch_up="the next sweep")


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
) -> OSBuild:
    """Adds a build to the catalogue, links the devices that already reported it, and re-evaluates the model."""
    build = OSBuild(
        model=model,
        build_number=build_number,
        security_patch_level=security_patch_level,
        released_at=released_at,
        android_version=android_version,
        channel=channel,
        organisation=organisation,
    )
    build.full_clean()
    build.save()
    # Devices that reported this build number before the catalogue knew it were "unknown".
    devices = Device.objects.filter(model=model, current_build__isnull=True, reported_build_number=build_number)
    if organisation is not None:
        devices = devices.filter(organisation=organisation)
    devices.update(current_build=build)
    enqueue_model_recompute(model_id=model.pk, reason=f"build {build_number} published")
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
def build_unpin(*, organisation: Organisation, model: DeviceModel) -> None:
    if BuildPin.objects.filter(organisation=organisation, model=model).delete()[0]:
        enqueue_model_recompute(model_id=model.pk, reason="pin removed")


@transaction.atomic
def model_set_support_dates(
    *,
    model: DeviceModel,
    security_support_until: dt.date | None,
    os_support_until: dt.date | None,
) -> DeviceModel:
    model.security_support_until = security_support_until
    model.os_support_until = os_support_until
    model.full_clean()
    model.save(update_fields=["security_support_until", "os_support_until"])
    enqueue_model_recompute(model_id=model.pk, reason="support dates changed")
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

    def manufacturer_for(name: str) -> Manufacturer:
        if name not in manufacturers:
            manufacturers[name], _ = Manufacturer.objects.get_or_create(
                slug=slugify(name)[:100], defaults={"name": name}
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
        if created:
            result.models_created += 1
        else:
            result.models_updated += 1
            touched.add(model.pk)

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


def _messages(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(error.messages)
    return str(error)


ROLLOUT_WINDOW_DAYS = 60


@transaction.atomic
def rollouts_refresh(*, now: dt.datetime | None = None) -> int:
    """Rewrites the rollout curves of the builds released in the last ``ROLLOUT_WINDOW_DAYS`` days.

    1. For each (build, device) the first check-in reporting it, and so the day after release it was
       installed (a device that ran it before the release counts on day 0) — one GROUP BY over the
       check-ins of those builds only, served by the (build, reported_at) index.
    2. Count installs per (organisation, build, day) and accumulate them; the devices of each
       organisation and model are the curve's 100 %.
    3. Replace every BuildRollout row in one transaction (readers see the old curves until it commits).
    """
    from devices.models import CheckIn, Device
    from updates.models import BuildRollout

    now = now or timezone.now()
    builds = {
        build.pk: build
        for build in OSBuild.objects.filter(
            released_at__gte=now - dt.timedelta(days=ROLLOUT_WINDOW_DAYS), released_at__lte=now, is_revoked=False
        ).only("pk", "model_id", "released_at")
    }
    BuildRollout.objects.all().delete()
    if not builds:
        return 0
    if connection.vendor == "postgresql":
        delay = "EXTRACT(EPOCH FROM (f.first_seen - b.released_at)) / 86400.0"
    else:
        delay = "julianday(f.first_seen) - julianday(b.released_at)"
    placeholders = ", ".join(["%s"] * len(builds))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT f.organisation_id, f.build_id,
                       CASE WHEN {delay} < 0 THEN 0 ELSE CAST({delay} AS INTEGER) END AS day, COUNT(*)
                  FROM (SELECT d.organisation_id, c.build_id, c.device_id, MIN(c.reported_at) AS first_seen
                          FROM {CheckIn._meta.db_table} c JOIN {Device._meta.db_table} d ON d.id = c.device_id
                         WHERE c.build_id IN ({placeholders}) AND d.retired_at IS NULL
                         GROUP BY d.organisation_id, c.build_id, c.device_id) f
                  JOIN {OSBuild._meta.db_table} b ON b.id = f.build_id
                 GROUP BY f.organisation_id, f.build_id, 3""",
            list(builds),
        )
        per_day = cursor.fetchall()
    eligible = {
        (row["organisation_id"], row["model_id"]): row["n"]
        for row in Device.objects.filter(retired_at__isnull=True, model_id__in={b.model_id for b in builds.values()})
        .values("organisation_id", "model_id")
        .annotate(n=Count("id"))
    }
    totals: dict[tuple[int, int], int] = defaultdict(int)
    points = []
    for organisation_id, build_id, day, count in sorted(per_day, key=lambda row: (row[0], row[1], row[2])):
        totals[(organisation_id, build_id)] += count
        points.append(
            BuildRollout(
                organisation_id=organisation_id,
                build_id=build_id,
                days_since_release=min(day, ROLLOUT_WINDOW_DAYS),
                installed=totals[(organisation_id, build_id)],
                eligible=eligible.get((organisation_id, builds[build_id].model_id), 0),
                computed_at=now,
            )
        )
    # Installs later than the window are folded into its last day, so keep one row per day.
    unique = {(p.organisation_id, p.build_id, p.days_since_release): p for p in points}
    BuildRollout.objects.bulk_create(unique.values(), batch_size=2000)
    return len(unique)
