"""The demo fleet: a believable catalogue, organisations, devices and their history, written in bulk.

``seed_demo()`` is what ``manage.py seed_demo`` and the run script call. It is deterministic and idempotent:

1. Catalogue: manufacturers, rugged models whose support dates are anchored to the seeding day (so a fresh
   demo always shows a model past support and one about to lose it), and per model a monthly stable build
   history, a revoked build and two betas. A build's number and dates depend only on its model and calendar
   month, never on ``seed``, so reseeding later only adds the months that have passed since.
2. Organisations (the ministry first), their fleets, a default policy each, a stricter policy on one of the
   ministry's fleets, and the ministry's private build line for its main models.
3. Devices, in batches of ``BATCH_SIZE``: device number ``i``'s organisation and serial depend on ``i`` alone,
   everything else on ``(seed, i)``. Devices that already exist are skipped, so a second run creates nothing
   and a larger ``devices`` adds only the missing ones. Each new device gets its check-in history (the newest
   check-in is its current state) and, for a few, a battery replacement. Rows are written with ``COPY`` on
   PostgreSQL (``bulk_create`` elsewhere) while a second thread generates the next batch.

Every row has a natural key; rows that exist are read back by it rather than written again. Nothing here
computes compliance: the engine does that from the rows written here.
"""

from __future__ import annotations

import bisect
import datetime as dt
import random
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import accumulate
from typing import TypeVar

from django.contrib.auth import get_user_model
from django.db import connections, models, router, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy
from psycopg import sql

from alerts.models import AlertSubscription
from devices.choices import BatteryEventKind, CheckInSource
from devices.models import BatteryEvent, CheckIn, Device
from fleet.choices import Role
from fleet.models import CompliancePolicy, Fleet, Membership, Organisation
from fleet.services import membership_sync_groups
from updates.choices import Channel
from updates.models import DeviceModel, Manufacturer, OSBuild

DEFAULT_DEVICES = 5000
DEFAULT_ORGANISATIONS = 3
DEFAULT_SEED = 42
BATCH_SIZE = 2000
MINISTRY_SLUG = "ministere-demo"
# Devices, check-ins and battery events go through COPY on PostgreSQL; the benchmark turns this off to measure
# bulk_create against it.
COPY_ON_POSTGRESQL = True

_DAY = 86400
# gettext_lazy rather than the usual ``_``: this module unpacks tuples into ``_`` throwaways.
_WORN_BATTERY = gettext_lazy("Worn battery (health %(health)d%%).")
_OTHER_BATTERY_REASONS = (
    gettext_lazy("Swollen battery found during maintenance."),
    gettext_lazy("Battery damaged by a fall."),
)
_M = TypeVar("_M", bound=models.Model)

# --- The catalogue ------------------------------------------------------------------------------------------

_MANUFACTURERS = [
    ("crosscall", "Crosscall"),
    ("samsung", "Samsung"),
    ("zebra", "Zebra Technologies"),
    ("honeywell", "Honeywell"),
    ("sonim", "Sonim"),
    ("kyocera", "Kyocera"),
]


@dataclass(frozen=True)
class _ModelSpec:
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
    _ModelSpec("crosscall", "Core-Z5", "core-z5", "CZ5", 35345811, "aosp", -41, 38, 14),
    _ModelSpec("crosscall", "Core-M5", "core-m5", "CM5", 35345624, "aosp", -61, 4, -13),
    _ModelSpec("crosscall", "Stellar-X5", "stellar-x5", "SX5", 35345937, "aosp", -38, 34, 10),
    _ModelSpec("samsung", "Galaxy XCover7", "galaxy-xcover7", "G556B", 35297215, "samsung", -34, 38, 38),
    _ModelSpec("samsung", "Galaxy XCover6 Pro", "galaxy-xcover6-pro", "G736B", 35188133, "samsung", -52, 8, -4),
    _ModelSpec("samsung", "Galaxy XCover Pro", "galaxy-xcover-pro", "G715FN", 35167510, "samsung", -82, -34, -46),
    _ModelSpec("zebra", "TC58", "tc58", "TC58", 35610428, "zebra", -48, 40, 16),
    _ModelSpec("zebra", "TC53", "tc53", "TC53", 35610519, "zebra", -48, 40, 16),
    _ModelSpec("zebra", "TC21", "tc21", "TC21", 35436202, "zebra", -84, 10, -10),
    _ModelSpec("zebra", "EC50", "ec50", "EC50", 35436307, "zebra", -89, -5, -23),
    _ModelSpec("honeywell", "CT40", "ct40", "CT40", 35312009, "honeywell", -101, -16, -40),
    _ModelSpec("honeywell", "CT45", "ct45", "CT45", 35312114, "honeywell", -50, 36, 12),
    _ModelSpec("sonim", "XP10", "xp10", "XP10", 35270922, "aosp", -43, 17, -7),
    _ModelSpec("kyocera", "DuraForce Ultra 5G", "duraforce-ultra-5g", "E7110", 35398716, "aosp", -61, 9, -3),
]
_MODEL_SPECS = {spec.slug: spec for spec in _MODELS}

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

# --- Organisations ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _OrgSpec:
    slug: str
    name: str
    tag: str  # asset-tag prefix
    fleets: tuple[tuple[str, str, int], ...]  # slug, name, weight
    models: tuple[tuple[str, int], ...]  # model slug, weight
    private_models: tuple[str, ...] = ()  # models that run the organisation's in-house OS


_MINISTRY = _OrgSpec(
    MINISTRY_SLUG,
    "Ministère de l'Intérieur — démo",
    "MININT",
    (
        ("ile-de-france", "Île-de-France", 25),
        ("auvergne-rhone-alpes", "Auvergne-Rhône-Alpes", 14),
        ("hauts-de-france", "Hauts-de-France", 12),
        ("nouvelle-aquitaine", "Nouvelle-Aquitaine", 11),
        ("occitanie", "Occitanie", 11),
        ("provence-alpes-cote-d-azur", "Provence-Alpes-Côte d'Azur", 11),
        ("grand-est", "Grand Est", 9),
        ("bretagne", "Bretagne", 7),
    ),
    (
        ("core-z5", 32),
        ("galaxy-xcover6-pro", 24),
        ("core-m5", 12),
        ("galaxy-xcover7", 10),
        ("stellar-x5", 8),
        ("duraforce-ultra-5g", 5),
        ("galaxy-xcover-pro", 4),
        ("tc21", 3),
        ("ct40", 2),
    ),
    private_models=("core-z5", "galaxy-xcover6-pro"),
)
_STRICT_FLEET = "ile-de-france"

_COMPANIES = [
    _OrgSpec(
        "transports-exemple",
        "Transports Exemple SA",
        "TEX",
        (("conducteurs", "Conducteurs", 6), ("controleurs", "Contrôleurs", 3), ("ateliers", "Ateliers", 1)),
        (("galaxy-xcover7", 40), ("galaxy-xcover6-pro", 25), ("core-m5", 15), ("xp10", 10), ("galaxy-xcover-pro", 10)),
    ),
    _OrgSpec(
        "logistique-demo",
        "Logistique Démo SARL",
        "LOG",
        (("entrepot-lyon", "Entrepôt Lyon", 3), ("entrepot-lille", "Entrepôt Lille", 2)),
        (("tc58", 30), ("tc53", 25), ("tc21", 20), ("ec50", 10), ("ct45", 10), ("ct40", 5)),
    ),
    _OrgSpec(
        "energie-reseaux-demo",
        "Énergie Réseaux Démo",
        "ERD",
        (("techniciens", "Techniciens réseau", 4), ("astreinte", "Astreinte", 1)),
        (("core-z5", 35), ("stellar-x5", 25), ("duraforce-ultra-5g", 25), ("xp10", 15)),
    ),
    _OrgSpec(
        "securite-exemple",
        "Sécurité Exemple SAS",
        "SEC",
        (("agents", "Agents de sûreté", 1),),
        (("galaxy-xcover7", 50), ("core-m5", 30), ("galaxy-xcover-pro", 20)),
    ),
    _OrgSpec(
        "ambulances-demo",
        "Ambulances Démo",
        "AMB",
        (("equipages", "Équipages", 3), ("regulation", "Régulation", 1)),
        (("galaxy-xcover6-pro", 60), ("galaxy-xcover7", 40)),
    ),
    _OrgSpec(
        "proprete-urbaine-demo",
        "Propreté Urbaine Démo",
        "PUD",
        (("voirie", "Voirie", 2), ("collecte", "Collecte", 2), ("encadrement", "Encadrement", 1)),
        (("ct45", 40), ("tc21", 30), ("core-m5", 30)),
    ),
]

_FIRST_NAMES = (
    "Camille Léa Manon Chloé Inès Sarah Jade Louise Emma Julie Pauline Marie Claire Anaïs Nadia Sophie Laura "
    "Lucas Hugo Louis Nathan Thomas Théo Maxime Antoine Nicolas Julien Mehdi Karim Pierre Yann Romain Kevin "
    "Alexandre Mathieu Olivier Sébastien Bruno Éric Franck Laurent"
).split()
_LAST_NAMES = (
    "Martin Bernard Thomas Petit Robert Richard Durand Dubois Moreau Laurent Simon Michel Lefebvre Leroy Roux "
    "David Bertrand Morel Fournier Girard Bonnet Dupont Lambert Fontaine Rousseau Vincent Muller Lefèvre Faure "
    "André Mercier Blanc Guérin Boyer Garnier Chevalier François Legrand Gauthier Garcia Perrin Robin Clément "
    "Morin Nicolas Henry Roussel Mathieu Gautier Masson Le Gall Kerjean Benali Haddad Nguyen"
).split()


def _organisation_specs(count: int) -> list[_OrgSpec]:
    specs = [_MINISTRY, *_COMPANIES][:count]
    for number in range(len(specs) + 1, count + 1):
        # Beyond the named companies, plain numbered ones keep the command usable with any --organisations.
        specs.append(
            _OrgSpec(
                f"entreprise-demo-{number}",
                f"Entreprise Démo {number} SAS",
                f"E{number:02d}",
                (("terrain", "Terrain", 3), ("siege", "Siège", 1)),
                (("galaxy-xcover7", 40), ("tc53", 30), ("core-z5", 30)),
            )
        )
    return specs


# --- Results ------------------------------------------------------------------------------------------------


@dataclass
class SeedResult:
    """What one run created, per model, and which organisations make up the demo (ministry first)."""

    created: dict[type[models.Model], int] = field(default_factory=dict)
    organisation_slugs: list[str] = field(default_factory=list)

    def add(self, model: type[models.Model], count: int) -> None:
        self.created[model] = self.created.get(model, 0) + count


SEEDED_MODELS: tuple[type[models.Model], ...] = (
    Manufacturer,
    DeviceModel,
    OSBuild,
    Organisation,
    Fleet,
    CompliancePolicy,
    Membership,
    AlertSubscription,
    Device,
    CheckIn,
    BatteryEvent,
)


def demo_organisations(count: int = DEFAULT_ORGANISATIONS) -> models.QuerySet[Organisation]:
    """The demo's organisations that exist, for whoever adds people to them later (the run script's managers)."""
    return Organisation.objects.filter(slug__in=[spec.slug for spec in _organisation_specs(count)])


# --- Entry point --------------------------------------------------------------------------------------------


@transaction.atomic
def seed_demo(
    *,
    devices: int = DEFAULT_DEVICES,
    organisations: int = DEFAULT_ORGANISATIONS,
    seed: int = DEFAULT_SEED,
    now: dt.datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SeedResult:
    """Creates whatever the demo fleet of ``devices`` devices over ``organisations`` organisations lacks.

    ``progress(done, total)`` is called after each batch with the devices just written and the number this run
    writes in all.
    """
    if organisations < 1 or devices < 0:
        raise ValueError(gettext("The demo needs at least one organisation and a non-negative number of devices."))
    now = now or timezone.now()
    result = SeedResult()
    org_specs = _organisation_specs(organisations)
    result.organisation_slugs = [spec.slug for spec in org_specs]

    device_models = _seed_catalogue(now=now, result=result)
    orgs, fleets = _seed_organisations(org_specs, result=result)
    _seed_managers_and_digests(orgs, now=now, result=result)
    _seed_private_builds(orgs[MINISTRY_SLUG], device_models, now=now, result=result)
    context = _DeviceContext.load(org_specs, orgs, fleets, device_models, now=now, seed=seed)
    _seed_devices(context, devices, result=result, progress=progress)
    return result


# --- Step 1: catalogue --------------------------------------------------------------------------------------


def _seed_catalogue(*, now: dt.datetime, result: SeedResult) -> dict[str, DeviceModel]:
    today = now.date()
    manufacturers = _ensure(
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
            launched_on=_add_months(today, spec.launched),
            security_support_until=_add_months(today, spec.security_until),
            os_support_until=_add_months(today, spec.os_until),
        )
        for spec in _MODELS
    ]
    by_key = _ensure(
        DeviceModel,
        wanted,
        DeviceModel.objects.filter(manufacturer__in=manufacturers.values(), slug__in=_MODEL_SPECS).select_related(
            "manufacturer"
        ),
        key=lambda m: (m.manufacturer_id, m.slug),
        result=result,
    )
    device_models = {slug: model for (_, slug), model in by_key.items()}
    builds = [build for model in device_models.values() for build in _public_builds(model, now=now)]
    _ensure_builds(builds, list(device_models.values()), result=result)
    return device_models


def _android_on(model: DeviceModel, day: dt.date) -> int:
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
    spec: _ModelSpec, *, version: int, launch_version: int, spl: dt.date, n: int, first: bool, rng: random.Random
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


def _beta_number(spec: _ModelSpec, *, version: int, released: dt.date, rng: random.Random) -> str:
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
    spec = _MODEL_SPECS[model.slug]
    today = now.date()
    end = min(today, model.security_support_until or today)
    launch_version = _android_on(model, model.launched_on or today)
    patch_day = 1 if spec.style == "samsung" else 5
    builds: list[OSBuild] = []
    versions: set[int] = set()
    for month in _months(model.launched_on or today, end):
        # One generator per calendar month: reseeding next month reproduces every earlier build exactly.
        rng = random.Random(f"{spec.slug}:{month:%Y-%m}")
        if builds and rng.random() < 0.15:
            continue  # vendors skip a month now and then
        spl = month.replace(day=patch_day)
        released = _moment(spl + dt.timedelta(days=rng.randint(3, 18)), rng)
        if released > now or spl > end:
            continue
        version = _android_on(model, spl)
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
    _revoke_one(builds, random.Random(f"{spec.slug}:revoked"), now=now)
    if builds and model.security_support_until and model.security_support_until > today:
        # Betas of the next Android while the model still gets upgrades, else of a maintenance release.
        version = _android_on(model, today)
        if model.os_support_until and model.os_support_until > today and _android_release(version + 1) <= today:
            version += 1
        for months_ago in (2, 1):
            # Anchored to last months, not to today: a rerun within the month finds the same betas.
            month = _add_months(today.replace(day=1), -months_ago)
            rng = random.Random(f"{spec.slug}:beta:{month:%Y-%m}")
            released = _moment(month + dt.timedelta(days=rng.randint(4, 24)), rng)
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
    return _unique_numbers(builds)


def _revoke_one(builds: list[OSBuild], rng: random.Random, *, now: dt.datetime) -> None:
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


def _unique_numbers(builds: list[OSBuild]) -> list[OSBuild]:
    # Formats are unique by construction; this guards the unique constraint should one ever repeat.
    seen: set[str] = set()
    for build in builds:
        while build.build_number in seen:
            build.build_number += "a"
        seen.add(build.build_number)
    return builds


def _ensure_builds(builds: list[OSBuild], device_models: Sequence[DeviceModel], *, result: SeedResult) -> None:
    _ensure(
        OSBuild,
        builds,
        OSBuild.objects.filter(model__in=device_models).only("model_id", "build_number", "organisation_id"),
        key=lambda b: (b.model_id, b.build_number, b.organisation_id),
        result=result,
    )


# --- Step 2: organisations ----------------------------------------------------------------------------------


def _seed_organisations(
    specs: list[_OrgSpec], *, result: SeedResult
) -> tuple[dict[str, Organisation], dict[tuple[int, str], Fleet]]:
    orgs = _ensure(
        Organisation,
        [Organisation(slug=spec.slug, name=spec.name) for spec in specs],
        Organisation.objects.filter(slug__in=[spec.slug for spec in specs]),
        key=lambda o: o.slug,
        result=result,
    )
    fleets = _ensure(
        Fleet,
        [Fleet(organisation=orgs[spec.slug], slug=slug, name=name) for spec in specs for slug, name, _ in spec.fleets],
        Fleet.objects.filter(organisation__in=orgs.values()),
        key=lambda f: (f.organisation_id, f.slug),
        result=result,
    )
    ministry = orgs[MINISTRY_SLUG]
    policies = [
        # The ministry validates each build in-house before rolling it out, hence a longer grace.
        CompliancePolicy(organisation=org, grace_days=30 if org == ministry else 14)
        for org in orgs.values()
    ]
    # A unit in the field on a tighter leash: a fleet policy wins over its organisation's.
    policies.append(
        CompliancePolicy(
            organisation=ministry,
            fleet=fleets[(ministry.pk, _STRICT_FLEET)],
            grace_days=7,
            max_patch_age_days=60,
            max_silence_days=7,
            battery_max_age_days=540,
            battery_min_health_pct=85,
        )
    )
    _ensure(
        CompliancePolicy,
        policies,
        CompliancePolicy.objects.filter(organisation__in=orgs.values()).only("organisation_id", "fleet_id"),
        key=lambda p: (p.organisation_id, p.fleet_id),
        result=result,
    )
    return orgs, fleets


def _seed_managers_and_digests(orgs: dict[str, Organisation], *, now: dt.datetime, result: SeedResult) -> None:
    """A manager per organisation (staff, no usable password: an operator sets one to log in as them) and a
    daily 08:00 digest to its managers, in French for the ministry; created two days back so the dispatcher's
    first run sends one and `make run` shows it in var/mail/."""
    user_model = get_user_model()
    wanted_users = []
    for slug in orgs:
        user = user_model(username=f"{slug}-manager", email=f"manager@{slug}.example", is_staff=True)
        user.set_unusable_password()
        wanted_users.append(user)
    # Users are not counted in the demo's summary: an installation's accounts are not demo data.
    users = _ensure(
        user_model,
        wanted_users,
        user_model._default_manager.filter(username__in=[user.username for user in wanted_users]),
        key=lambda user: user.username,
        result=SeedResult(),
    )
    _ensure(
        Membership,
        [
            Membership(user=users[f"{slug}-manager"], organisation=organisation, role=Role.MANAGER)
            for slug, organisation in orgs.items()
        ],
        Membership.objects.filter(organisation__in=orgs.values()),
        key=lambda membership: (membership.user_id, membership.organisation_id),
        result=result,
    )
    for user in users.values():
        membership_sync_groups(user=user)  # the "Fleet manager" group, as the admin does
    _ensure(
        AlertSubscription,
        [
            AlertSubscription(
                organisation=organisation,
                name=gettext("Daily digest"),
                language="fr" if slug == MINISTRY_SLUG else "en",
                time_zone="Europe/Paris",
                send_at=dt.time(8, 0),
                created_at=now - dt.timedelta(days=2),
            )
            for slug, organisation in orgs.items()
        ],
        AlertSubscription.objects.filter(organisation__in=orgs.values()),
        key=lambda subscription: subscription.organisation_id,
        result=result,
    )


def _seed_private_builds(
    ministry: Organisation, device_models: dict[str, DeviceModel], *, now: dt.datetime, result: SeedResult
) -> None:
    """The ministry's in-house OS for its main models: a validated release every other month or so."""
    builds: list[OSBuild] = []
    for slug in _MINISTRY.private_models:
        model = device_models[slug]
        line: list[OSBuild] = []
        minor: dict[int, int] = defaultdict(int)
        end = min(now.date(), model.security_support_until or now.date())
        for month in _months(_add_months(model.launched_on or now.date(), 3), end):
            rng = random.Random(f"minint:{slug}:{month:%Y-%m}")
            if rng.random() < 0.45:
                continue
            version = _android_on(model, month)
            minor[version] += 1
            released = _moment(month + dt.timedelta(days=rng.randint(18, 35)), rng)
            hotfix = rng.random() < 0.2
            for patch in range(2 if hotfix else 1):
                at = released + dt.timedelta(days=9 * patch)
                if at > now:
                    break
                line.append(
                    OSBuild(
                        model=model,
                        organisation=ministry,
                        build_number=f"MININT-{version}.{minor[version]}.{patch}",
                        android_version=str(version),
                        security_patch_level=month,
                        released_at=at,
                        notes=gettext("In-house build validated by the ministry's mobile team."),
                    )
                )
        _revoke_one(line, random.Random(f"minint:{slug}:revoked"), now=now)
        builds += _unique_numbers(line)
    _ensure_builds(builds, list(device_models.values()), result=result)


# --- Step 3: devices ----------------------------------------------------------------------------------------


@dataclass
class _Line:
    """The builds of one (model, organisation-or-public, channel), oldest first."""

    ids: list[int] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    patches: list[dt.date] = field(default_factory=list)
    released: list[float] = field(default_factory=list)
    revoked: list[bool] = field(default_factory=list)

    def released_by(self, ts: float) -> int:
        """How many of the line's builds were out at ``ts``."""
        return bisect.bisect_right(self.released, ts)


@dataclass
class _ModelContext:
    model: DeviceModel
    spec: _ModelSpec
    launched: float
    supported_until: float
    stable: _Line
    beta: _Line
    private: _Line
    service: str  # who replaces batteries besides the organisation itself


@dataclass
class _OrgContext:
    org: Organisation
    spec: _OrgSpec
    fleets: list[Fleet]
    fleet_weights: list[int]  # cumulative, as random.choices takes them fastest
    models: list[_ModelContext]
    model_weights: list[int]  # cumulative


@dataclass
class _DeviceContext:
    orgs: list[_OrgContext]
    org_weights: list[float]
    now: float
    seed: int
    # Translated up front: the generator runs in another thread, which does not share the active language.
    worn_battery: str = field(default_factory=lambda: str(_WORN_BATTERY))
    other_battery_reasons: list[str] = field(default_factory=lambda: [str(text) for text in _OTHER_BATTERY_REASONS])

    @classmethod
    def load(
        cls,
        specs: list[_OrgSpec],
        orgs: dict[str, Organisation],
        fleets: dict[tuple[int, str], Fleet],
        device_models: dict[str, DeviceModel],
        *,
        now: dt.datetime,
        seed: int,
    ) -> _DeviceContext:
        """Reads the builds back from the database, so devices follow the catalogue as it is, not as planned."""
        ministry = orgs[MINISTRY_SLUG]
        lines: dict[tuple[int, int | None, str], _Line] = defaultdict(_Line)
        rows = (
            OSBuild.objects.filter(model__in=device_models.values())
            .filter(Q(organisation__isnull=True) | Q(organisation=ministry))
            .order_by("released_at", "id")
            .values_list(
                "id",
                "model_id",
                "organisation_id",
                "channel",
                "build_number",
                "android_version",
                "security_patch_level",
                "released_at",
                "is_revoked",
            )
        )
        for pk, model_id, org_id, channel, number, version, spl, released, revoked in rows:
            line = lines[(model_id, org_id, channel)]
            line.ids.append(pk)
            line.numbers.append(number)
            line.versions.append(version)
            line.patches.append(spl)
            line.released.append(released.timestamp())
            line.revoked.append(revoked)
        contexts = {}
        for slug, model in device_models.items():
            launched = model.launched_on or now.date() - dt.timedelta(days=365)
            contexts[slug] = _ModelContext(
                model=model,
                spec=_MODEL_SPECS[slug],
                launched=_timestamp(launched),
                supported_until=_timestamp(model.security_support_until) if model.security_support_until else 1e12,
                stable=lines[(model.pk, None, Channel.STABLE)],
                beta=lines[(model.pk, None, Channel.BETA)],
                private=lines[(model.pk, ministry.pk, Channel.STABLE)],
                service=f"{model.manufacturer.name} Service",
            )
        org_contexts = []
        for spec in specs:
            org = orgs[spec.slug]
            org_contexts.append(
                _OrgContext(
                    org=org,
                    spec=spec,
                    fleets=[fleets[(org.pk, slug)] for slug, _, _ in spec.fleets],
                    fleet_weights=list(accumulate(weight for _, _, weight in spec.fleets)),
                    models=[contexts[slug] for slug, _ in spec.models],
                    model_weights=list(accumulate(weight for _, weight in spec.models)),
                )
            )
        # The ministry holds ~70 % of the devices; the companies share the rest, the first ones larger.
        companies = [1 / rank for rank in range(1, len(specs))]
        org_weights = [0.7 if companies else 1.0] + [0.3 * w / sum(companies) for w in companies]
        return cls(orgs=org_contexts, org_weights=org_weights, now=now.timestamp(), seed=seed)

    def organisation_of(self, index: int) -> _OrgContext:
        u = _uniform(index, salt=1)
        for org, weight in zip(self.orgs, self.org_weights, strict=True):
            if u < weight:
                return org
            u -= weight
        return self.orgs[-1]


_DEVICE_COLUMNS = (
    "organisation_id", "fleet_id", "serial", "imei", "asset_tag", "assignee", "model_id", "channel", "enrolled_at",
    "battery_installed_on", "current_build_id", "reported_build_number", "android_version", "security_patch_level",
    "last_check_in_at", "battery_level_pct", "battery_health_pct", "battery_cycle_count",
)  # fmt: skip
_CHECK_IN_COLUMNS = (
    "device_id", "reported_at", "received_at", "source", "build_id", "build_number", "android_version",
    "security_patch_level", "battery_level_pct", "battery_health_pct", "battery_cycle_count",
)  # fmt: skip
_EVENT_COLUMNS = (
    "device_id", "kind", "occurred_at", "part_serial", "health_pct", "reason", "performed_by", "created_at",
)  # fmt: skip


def _seed_devices(
    context: _DeviceContext, count: int, *, result: SeedResult, progress: Callable[[int, int], None] | None
) -> None:
    existing = set(
        Device.objects.filter(organisation__in=[o.org for o in context.orgs]).values_list("organisation_id", "serial")
    )
    missing = [i for i in range(count) if (context.organisation_of(i).org.pk, serial_of(i)) not in existing]
    if progress:
        progress(0, len(missing))
    chunks = [missing[start : start + BATCH_SIZE] for start in range(0, len(missing), BATCH_SIZE)]
    if not chunks:
        return
    # Generating a batch is pure Python and writing one mostly waits on the database: a second thread generates
    # the next batch meanwhile. It never touches the database (the context holds everything it reads).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seed-demo") as pool:
        upcoming = pool.submit(_generate_batch, context, chunks[0])
        for number in range(len(chunks)):
            batch = upcoming.result()
            if number + 1 < len(chunks):
                upcoming = pool.submit(_generate_batch, context, chunks[number + 1])
            ids = _insert_rows(Device, _DEVICE_COLUMNS, [device for device, _, _ in batch], return_ids=True)
            check_ins = [(pk, *row) for pk, (_, rows, _) in zip(ids, batch, strict=True) for row in rows]
            events = [(pk, *event) for pk, (_, _, event) in zip(ids, batch, strict=True) if event]
            _insert_rows(CheckIn, _CHECK_IN_COLUMNS, check_ins)
            _insert_rows(BatteryEvent, _EVENT_COLUMNS, events)
            result.add(Device, len(batch))
            result.add(CheckIn, len(check_ins))
            result.add(BatteryEvent, len(events))
            if progress:
                progress(len(batch), len(missing))


def _generate_batch(context: _DeviceContext, indexes: list[int]) -> list[tuple[tuple, list[tuple], tuple | None]]:
    return [_generate_device(context, index) for index in indexes]


def _insert_rows(
    model: type[models.Model], columns: Sequence[str], rows: list[tuple], *, return_ids: bool = False
) -> list[int]:
    """Inserts plain rows; returns their new ids when asked.

    On PostgreSQL this is ``COPY``: building model instances and preparing every value through its field made
    ``bulk_create`` the bottleneck (3.4x slower on 100,000 devices, see bench/results/seed_demo.json). Ids are taken
    from the table's sequence first, so the rows can be written with their ids and the check-ins point at them.
    Other backends (SQLite, the embedded default) go through ``bulk_create``.
    """
    if not rows:
        return []
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql" or not COPY_ON_POSTGRESQL:
        objs = [model(**dict(zip(columns, row, strict=True))) for row in rows]
        model.objects.bulk_create(objs, batch_size=BATCH_SIZE)
        return [obj.pk for obj in objs]
    table = model._meta.db_table
    fields = {f.column: f for f in model._meta.concrete_fields}
    # Columns the generator leaves out get their model default, as bulk_create would give them.
    defaults = {
        column: f.get_default()
        for column, f in fields.items()
        if column not in columns and not f.primary_key and (f.has_default() or not f.null)
    }
    names = [*columns, *defaults]
    extra = tuple(defaults.values())
    ids: list[int] = []
    with connection.cursor() as cursor:
        if return_ids:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, len(rows)]
            )
            ids = [pk for (pk,) in cursor.fetchall()]
            names.insert(0, "id")
            rows = [(pk, *row) for pk, row in zip(ids, rows, strict=True)]
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
        )
        # Binary COPY needs each column's type: "varchar(64)" is a varchar, a foreign key its target's key type.
        types = [
            (field.rel_db_type(connection) if field.is_relation else field.db_type(connection)).split("(")[0]
            for field in (fields[name] for name in names)
        ]
        with cursor.cursor.copy(statement) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row + extra)
    return ids


def serial_of(index: int) -> str:
    """Device number ``index``'s serial: ten characters, the same for every seed, distinct for every index."""
    # An odd multiplier is a bijection modulo 2**50, so serials never collide and look random.
    value = (index * 0x2545F4914F6CD + 0x1B873593) % (1 << 50)
    alphabet = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"[:32]
    return "".join(alphabet[(value >> shift) & 31] for shift in range(45, -1, -5))


def imei_of(index: int, tac: int) -> str:
    """A 15-digit IMEI: the model's type allocation code, a serial number drawn from ``index``, a Luhn digit."""
    # A bijection of the index on six digits; past a million devices the next TAC block takes over.
    body = f"{tac + index // 1_000_000:08d}{(index * 7919 + 104_729) % 1_000_000:06d}"
    total = 0
    for position, char in enumerate(reversed(body)):
        value = int(char) * (1 if position % 2 else 2)
        total += value - 9 if value > 9 else value
    return body + str(-total % 10)


def _generate_device(context: _DeviceContext, index: int) -> tuple[tuple, list[tuple], tuple | None]:
    """One device as rows: the device, its check-ins (newest first) and maybe a battery replacement.

    Rows follow ``_DEVICE_COLUMNS``, ``_CHECK_IN_COLUMNS`` and ``_EVENT_COLUMNS`` without the device id, which
    the caller adds once the device is written. Times are POSIX seconds until the rows are built.
    """
    rng = random.Random(context.seed * 10_000_019 + index)
    now = context.now
    org = context.organisation_of(index)
    mc = rng.choices(org.models, cum_weights=org.model_weights)[0]
    fleet = None if rng.random() < 0.03 else rng.choices(org.fleets, cum_weights=org.fleet_weights)[0]
    # Devices were bought while the model was on sale, within the last four years.
    earliest = max(mc.launched + 20 * _DAY, now - 4 * 365 * _DAY)
    latest = max(earliest + _DAY, min(now - 10 * _DAY, mc.supported_until - 30 * _DAY))
    enrolled = rng.uniform(earliest, latest)
    # Battery: health lost per year and cycles per day; one device in twenty wears its battery fast.
    wear = rng.uniform(14, 24) if rng.random() < 0.05 else rng.uniform(2.5, 7)
    cycles_per_day = rng.uniform(0.35, 1.05)
    replaced: float | None = None
    channel = Channel.STABLE

    # 1. When it last reported: most within hours, some within days, a few silent for weeks, a few never.
    kind = rng.random()
    if kind < 0.02:
        last = None
    elif kind < 0.92:
        last = now - min(rng.expovariate(1 / 14), 72) * 3600
    elif kind < 0.96:
        last = now - rng.uniform(3, 20) * _DAY
    else:
        last = now - rng.uniform(30, 120) * _DAY
    if last is not None:
        last = float(int(max(last, enrolled + 3600)))

    # 2. Which build it runs: its organisation's line if it has one, else the manufacturer's.
    line = mc.private if mc.spec.slug in org.spec.private_models else mc.stable
    if last is not None and not line.released_by(last):
        line = mc.stable
    if last is not None and not line.released_by(last):
        last = None  # nothing it could have run existed yet: it has not reported
    check_ins: list[tuple] = []
    if last is not None:
        newest = line.released_by(last) - 1
        while newest > 0 and line.revoked[newest]:
            newest -= 1
        r = rng.random()
        behind = (
            0
            if r < 0.6
            else 1
            if r < 0.85
            else 2
            if r < 0.92
            else _between(rng, 3, 6)
            if r < 0.97
            else _between(rng, 7, 20)
        )
        position = max(0, newest - behind)
        if line.revoked[position] and rng.random() < 0.7:
            position = max(0, position - 1)  # most devices never installed the pulled build
        if now - enrolled > 400 * _DAY and last - enrolled > 366 * _DAY and rng.random() < 0.08:
            replaced = float(int(rng.uniform(enrolled + 365 * _DAY, last - _DAY)))

        # 3. History, newest first: reports days to weeks apart, now and then on an older build. Whole seconds,
        # strictly decreasing, so (device, reported_at, source) never collides.
        at, pos = last, position
        for step in range(_between(rng, 3, 5)):
            if step:
                at -= _between(rng, 2 * _DAY, 25 * _DAY)
                if rng.random() < 0.35:
                    pos -= _between(rng, 1, 2)
                while pos >= 0 and line.released[pos] > at:
                    pos -= 1
                if at < enrolled or pos < 0:
                    break
            build = (line.ids[pos], line.numbers[pos], line.versions[pos], line.patches[pos])
            if not step:
                if line is mc.stable and mc.beta.released_by(last) and rng.random() < 0.02:
                    channel, beta = Channel.BETA, mc.beta.released_by(last) - 1
                    build = (mc.beta.ids[beta], mc.beta.numbers[beta], mc.beta.versions[beta], mc.beta.patches[beta])
                elif rng.random() < 0.015:
                    # A build the catalogue has never heard of: an engineering image, an unpublished hotfix.
                    suffix = rng.choice(["-eng", "-userdebug", "-hotfix1", "-rc2"])
                    build = (None, build[1] + suffix, build[2], build[3])
            since = replaced if replaced is not None and at >= replaced else enrolled
            age = (at - since) / _DAY
            health = max(35, round(100 - (wear / 2 if since == replaced else wear) * age / 365))
            moment = _datetime(at)
            check_ins.append(
                (
                    moment,
                    moment + dt.timedelta(seconds=_between(rng, 1, 90)),
                    CheckInSource.DEMO.value,
                    *build,
                    _between(rng, 8, 100),
                    health,
                    int(cycles_per_day * age),
                )
            )
    # The device's state is its newest report: build, versions, last check-in and battery.
    state: tuple = (None, "", "", None, None, None, None, None)
    if check_ins:
        reported_at, _, _, build_id, number, version, patch, level, health, cycles = check_ins[0]
        state = (build_id, number, version, patch, reported_at, level, health, cycles)
    device = (
        org.org.pk,
        fleet.pk if fleet else None,
        serial_of(index),
        imei_of(index, mc.spec.tac) if rng.random() < 0.94 else None,
        "" if rng.random() < 0.05 else f"{org.spec.tag}-{_datetime(enrolled):%Y}-{index:06d}",
        "" if rng.random() < 0.1 else f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
        mc.model.pk,
        channel.value,
        _datetime(enrolled),
        _datetime(replaced if replaced is not None else enrolled).date(),
        *state,
    )
    event = None
    if replaced is not None:
        old_health = max(35, round(100 - wear * (replaced - enrolled) / _DAY / 365))
        if old_health < 80:
            reason = context.worn_battery % {"health": old_health}
        else:
            reason = rng.choice(context.other_battery_reasons)
        event = (
            BatteryEventKind.REPLACEMENT.value,
            _datetime(replaced),
            f"BAT-{mc.spec.code}-{_between(rng, 100000, 999999)}",
            old_health,
            reason,
            rng.choice([org.spec.name, mc.service]),
            _datetime(replaced + 3600),
        )
    return device, check_ins, event


# --- Helpers ------------------------------------------------------------------------------------------------


def _ensure(
    model: type[_M], wanted: Iterable[_M], existing: Iterable[_M], *, key: Callable[[_M], Hashable], result: SeedResult
) -> dict[Hashable, _M]:
    """Inserts the ``wanted`` rows whose natural key is not among ``existing``; returns every row by key, with ids."""
    found = {key(obj): obj for obj in existing}
    missing: dict[Hashable, _M] = {}
    for obj in wanted:
        missing.setdefault(key(obj), obj)
    new = [obj for k, obj in missing.items() if k not in found]
    # Both backends return the new ids from a bulk insert (SQLite >= 3.35, PostgreSQL): no re-read needed.
    model.objects.bulk_create(new, batch_size=BATCH_SIZE)
    found.update((key(obj), obj) for obj in new)
    result.add(model, len(new))
    return found


def _uniform(index: int, *, salt: int) -> float:
    """A uniform number in [0, 1) from ``index`` alone (SplitMix64), so an index keeps its organisation."""
    mask = (1 << 64) - 1
    z = (index * 0x9E3779B97F4A7C15 + salt * 0xD1B54A32D192ED03) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return (z ^ (z >> 31)) / (1 << 64)


def _between(rng: random.Random, low: int, high: int) -> int:
    """``rng.randint(low, high)`` at a fraction of its cost, which counts at a few million draws."""
    return low + int(rng.random() * (high - low + 1))


def _add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    return dt.date(day.year + month // 12, month % 12 + 1, min(day.day, 28))


def _months(first: dt.date, last: dt.date) -> Iterator[dt.date]:
    """The first day of every month from ``first``'s to ``last``'s."""
    month = first.replace(day=1)
    while month <= last:
        yield month
        month = _add_months(month, 1)


def _moment(day: dt.date, rng: random.Random) -> dt.datetime:
    """A working-hours moment of ``day``, in UTC."""
    return dt.datetime(day.year, day.month, day.day, rng.randint(6, 17), rng.randint(0, 59), tzinfo=dt.UTC)


def _timestamp(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def _datetime(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC)
