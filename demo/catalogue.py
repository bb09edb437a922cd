"""Step 1 of the demo seed: the catalogue.

Manufacturers, rugged models whose support dates are anchored to the seeding day (so a fresh demo always shows a
model past support and one about to lose it), and per model a monthly stable build history, a revoked build and
two betas. A build's number and dates depend only on its model and calendar month, never on ``seed``, so
reseeding later only adds the months that have passed since.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.translation import gettext

from demo.base import SeedResult, add_months, ensure, moment, month_starts
from updates.choices import Channel
from updates.models import DeviceModel, Manufacturer, OSBuild

_MANUFACTURERS = [
    ("crosscall", "Crosscall"),
    ("samsung", "Samsung"),
    ("zebra", "Zebra Technologies"),
    ("honeywell", "Honeywell"),
    ("sonim", "Sonim"),
    ("kyocera", "Kyocera"),
]


@dataclass(frozen=True)
class ModelSpec:
    manufacturer: str
    name: str
    slug: str
    code: str  # the vendor's model code, used in build numbers
    tac: int  # IMEI type allocation code (8 digits)
    style: str  # build-number format: aosp, samsung, zebra, honeywell
    # Months relative to the seeding day, calibrated on the real picture of late 2026 (endoflife.date for
    # Samsung): relative dates keep the demo meaningful whenever it is seeded.
    launched: int
    security_until: int
    os_until: int


_MODELS = [
    ModelSpec("crosscall", "Core-Z5", "core-z5", "CZ5", 35345811, "aosp", -41, 38, 14),
    ModelSpec("crosscall", "Core-M5", "core-m5", "CM5", 35345624, "aosp", -61, 4, -13),
    ModelSpec("crosscall", "Stellar-X5", "stellar-x5", "SX5", 35345937, "aosp", -38, 34, 10),
    ModelSpec("samsung", "Galaxy XCover7", "galaxy-xcover7", "G556B", 35297215, "samsung", -34, 38, 38),
    ModelSpec("samsung", "Galaxy XCover6 Pro", "galaxy-xcover6-pro", "G736B", 35188133, "samsung", -52, 8, -4),
    ModelSpec("samsung", "Galaxy XCover Pro", "galaxy-xcover-pro", "G715FN", 35167510, "samsung", -82, -34, -46),
    ModelSpec("zebra", "TC58", "tc58", "TC58", 35610428, "zebra", -48, 40, 16),
    ModelSpec("zebra", "TC53", "tc53", "TC53", 35610519, "zebra", -48, 40, 16),
    ModelSpec("zebra", "TC21", "tc21", "TC21", 35436202, "zebra", -84, 10, -10),
    ModelSpec("zebra", "EC50", "ec50", "EC50", 35436307, "zebra", -89, -5, -23),
    ModelSpec("honeywell", "CT40", "ct40", "CT40", 35312009, "honeywell", -101, -16, -40),
    ModelSpec("honeywell", "CT45", "ct45", "CT45", 35312114, "honeywell", -50, 36, 12),
    ModelSpec("sonim", "XP10", "xp10", "XP10", 35270922, "aosp", -43, 17, -7),
    ModelSpec("kyocera", "DuraForce Ultra 5G", "duraforce-ultra-5g", "E7110", 35398716, "aosp", -61, 9, -3),
]
MODEL_SPECS = {spec.slug: spec for spec in _MODELS}

# Android releases (endoflife.date); later ones are assumed yearly in June. A model gets a release ~5 months
# after it is out, as long as its OS support lasts.
_ANDROID_RELEASES = {
    8: dt.date(2017, 8, 21),
    9: dt.date(2018, 8, 6),
    10: dt.date(2019, 9, 3),
    11: dt.date(2020, 9, 8),
    12: dt.date(2021, 10, 4),
    13: dt.date(2022, 8, 15),
    14: dt.date(2023, 10, 4),
    15: dt.date(2024, 9, 3),
    16: dt.date(2025, 6, 10),
    17: dt.date(2026, 6, 16),
}
_ROLLOUT = dt.timedelta(days=150)
_AOSP_LETTERS = {8: "O", 9: "P", 10: "Q", 11: "R", 12: "S", 13: "T", 14: "U", 15: "A", 16: "B"}


def seed_catalogue(*, now: dt.datetime, result: SeedResult) -> dict[str, DeviceModel]:
    today = now.date()
    manufacturers = ensure(
        Manufacturer,
        [Manufacturer(slug=slug, name=name) for slug, name in _MANUFACTURERS],
        Manufacturer.objects.filter(slug__in=[slug for slug, _ in _MANUFACTURERS]),
        key=lambda m: m.slug,
        result=result,
    )
    wanted = [
        DeviceModel(
            manufacturer=manufacturers[spec.manufacturer],
            name=spec.name,
            slug=spec.slug,
            launched_on=add_months(today, spec.launched),
            security_support_until=add_months(today, spec.security_until),
            os_support_until=add_months(today, spec.os_until),
        )
        for spec in _MODELS
    ]
    by_key = ensure(
        DeviceModel,
        wanted,
        DeviceModel.objects.filter(manufacturer__in=manufacturers.values(), slug__in=MODEL_SPECS).select_related(
            "manufacturer"
        ),
        key=lambda m: (m.manufacturer_id, m.slug),
        result=result,
    )
    device_models = {slug: model for (_, slug), model in by_key.items()}
    builds = [build for model in device_models.values() for build in _public_builds(model, now=now)]
    ensure_builds(builds, list(device_models.values()), result=result)
    return device_models


def android_on(model: DeviceModel, day: dt.date) -> int:
    """The Android version a model runs on ``day``: what it launched with plus the upgrades it got since."""

    def newest_rolled_out(on: dt.date) -> int:
        version = min(_ANDROID_RELEASES)
        while _android_release(version + 1) + _ROLLOUT <= on:
            version += 1
        return version

    launched = model.launched_on or day
    upgraded_until = min(day, model.os_support_until or day)
    return max(newest_rolled_out(launched), newest_rolled_out(upgraded_until))


def _android_release(version: int) -> dt.date:
    last = max(_ANDROID_RELEASES)
    return _ANDROID_RELEASES.get(version) or dt.date(_ANDROID_RELEASES[last].year + version - last, 6, 16)


def _aosp_letter(version: int) -> str:
    return _AOSP_LETTERS.get(version) or chr(ord("C") + version - 17)


def _build_number(
    spec: ModelSpec, *, version: int, launch_version: int, spl: dt.date, n: int, first: bool, rng: random.Random
) -> str:
    """A number in the vendor's own format; ``n`` counts the line's earlier builds, ``first`` marks a new OS."""
    letter = _aosp_letter(version)
    if spec.style == "samsung":
        # Model, region, S(ecurity)/U(pgrade), bootloader, OS letter, year letter, month letter, revision.
        bootloader = "123456789ABCDEFGHJKLMNPQRSTUVWXYZ"[min(n // 12, 32)]
        return (
            f"{spec.code}XX{'U' if first else 'S'}{bootloader}{chr(ord('A') + version - launch_version)}"
            f"{chr(ord('A') + (spl.year - 2001) % 26)}{chr(ord('A') + spl.month - 1)}{rng.choice('1112')}"
        )
    if spec.style == "zebra":
        return f"{version}-{10 + n:02d}-{rng.randint(1, 30):02d}.00-{letter}G-U{rng.choice('0001')}0-STD-HEL-04"
    if spec.style == "honeywell":
        return f"{spec.code}-{letter}1-{version}.{1 + n // 6:02d}.{n % 6:02d}.{1000 + 37 * n:04d}"
    built = spl - dt.timedelta(days=rng.randint(3, 20))
    aosp = f"{letter}{'P' if first else 'Q'}{1 + (spl.month - 1) // 4}A.{built:%y%m%d}.{rng.randint(1, 40):03d}"
    return f"{spec.code}_{aosp}" if spec.manufacturer == "crosscall" else aosp


def _beta_number(spec: ModelSpec, *, version: int, released: dt.date, rng: random.Random) -> str:
    """A beta's number; it carries its release month, so a model's betas of different months never collide."""
    letter = _aosp_letter(version)
    if spec.style == "samsung":  # Samsung's betas carry a Z where the OS letter goes.
        return f"{spec.code}XXU9Z{chr(ord('A') + (released.year - 2001) % 26)}{chr(ord('A') + released.month - 1)}1"
    if spec.style == "zebra":
        return f"{version}-00-{released:%y%m}.00-{letter}G-BETA-STD-HEL-04"
    if spec.style == "honeywell":
        return f"{spec.code}-{letter}1-{version}.00.{released:%y%m}.BETA"
    aosp = f"{letter}P2{1 + released.month % 3}.{released:%y%m%d}.{rng.randint(1, 40):03d}"
    return f"{spec.code}_{aosp}" if spec.manufacturer == "crosscall" else aosp


def _public_builds(model: DeviceModel, *, now: dt.datetime) -> list[OSBuild]:
    """Monthly-ish stable builds from launch to end of support (or now), one revoked, and two recent betas."""
    spec = MODEL_SPECS[model.slug]
    today = now.date()
    end = min(today, model.security_support_until or today)
    launch_version = android_on(model, model.launched_on or today)
    patch_day = 1 if spec.style == "samsung" else 5
    builds: list[OSBuild] = []
    versions: set[int] = set()
    for month in month_starts(model.launched_on or today, end):
        # One generator per calendar month: reseeding next month reproduces every earlier build exactly.
        rng = random.Random(f"{spec.slug}:{month:%Y-%m}")
        if builds and rng.random() < 0.15:
            continue  # vendors skip a month now and then
        spl = month.replace(day=patch_day)
        released = moment(spl + dt.timedelta(days=rng.randint(3, 18)), rng)
        if released > now or spl > end:
            continue
        version = android_on(model, spl)
        number = _build_number(
            spec,
            version=version,
            launch_version=launch_version,
            spl=spl,
            n=len(builds),
            first=version not in versions,
            rng=rng,
        )
        versions.add(version)
        builds.append(
            OSBuild(
                model=model,
                build_number=number,
                android_version=str(version),
                security_patch_level=spl,
                released_at=released,
            )
        )
    revoke_one(builds, random.Random(f"{spec.slug}:revoked"), now=now)
    if builds and model.security_support_until and model.security_support_until > today:
        # Betas of the next Android while the model still gets upgrades, else of a maintenance release.
        version = android_on(model, today)
        if model.os_support_until and model.os_support_until > today and _android_release(version + 1) <= today:
            version += 1
        for months_ago in (2, 1):
            # Anchored to last months, not to today: a rerun within the month finds the same betas.
            month = add_months(today.replace(day=1), -months_ago)
            rng = random.Random(f"{spec.slug}:beta:{month:%Y-%m}")
            released = moment(month + dt.timedelta(days=rng.randint(4, 24)), rng)
            builds.append(
                OSBuild(
                    model=model,
                    build_number=_beta_number(spec, version=version, released=released.date(), rng=rng),
                    android_version=str(version),
                    security_patch_level=month,
                    released_at=released,
                    channel=Channel.BETA,
                )
            )
    return unique_numbers(builds)


def revoke_one(builds: list[OSBuild], rng: random.Random, *, now: dt.datetime) -> None:
    if len(builds) < 4:
        return
    build = builds[len(builds) - rng.randint(2, min(7, len(builds) - 1))]
    build.is_revoked = True
    build.revoked_at = min(now, build.released_at + dt.timedelta(days=rng.randint(2, 6), hours=rng.randint(0, 12)))
    build.notes = rng.choice(
        [
            gettext("Pulled by the manufacturer: the camera fails to start after the update."),
            gettext("Pulled by the manufacturer: abnormal battery drain reported in the field."),
            gettext("Pulled: the push-to-talk button stops responding after a reboot."),
            gettext("Pulled: devices lose their VPN profile after the update."),
        ]
    )


def unique_numbers(builds: list[OSBuild]) -> list[OSBuild]:
    # Formats are unique by construction; this guards the unique constraint should one ever repeat.
    seen: set[str] = set()
    for build in builds:
        while build.build_number in seen:
            build.build_number += "a"
        seen.add(build.build_number)
    return builds


def ensure_builds(builds: list[OSBuild], device_models: Sequence[DeviceModel], *, result: SeedResult) -> None:
    ensure(
        OSBuild,
        builds,
        OSBuild.objects.filter(model__in=device_models).only("model_id", "build_number", "organisation_id"),
        key=lambda b: (b.model_id, b.build_number, b.organisation_id),
        result=result,
    )
