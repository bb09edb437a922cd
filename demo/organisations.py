"""Step 2 of the demo seed: organisations and the people in them.

The organisations (the ministry first), their fleets, a default policy each, a stricter policy on one of the
ministry's fleets, a manager and a daily digest per organisation, and the ministry's private build line for its
main models.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import models
from django.utils.translation import gettext

from alerts.models import AlertSubscription
from demo.base import DEFAULT_ORGANISATIONS, SeedResult, add_months, ensure, moment, month_starts
from demo.catalogue import android_on, ensure_builds, revoke_one, unique_numbers
from fleet.choices import Role
from fleet.models import CompliancePolicy, Fleet, Membership, Organisation
from fleet.services import membership_sync_groups
from updates.models import DeviceModel, OSBuild

MINISTRY_SLUG = "ministere-demo"


@dataclass(frozen=True)
class OrgSpec:
    slug: str
    name: str
    tag: str  # asset-tag prefix
    fleets: tuple[tuple[str, str, int], ...]  # slug, name, weight
    models: tuple[tuple[str, int], ...]  # model slug, weight
    private_models: tuple[str, ...] = ()  # models that run the organisation's in-house OS


MINISTRY = OrgSpec(
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
    OrgSpec(
        "transports-exemple",
        "Transports Exemple SA",
        "TEX",
        (("conducteurs", "Conducteurs", 6), ("controleurs", "Contrôleurs", 3), ("ateliers", "Ateliers", 1)),
        (("galaxy-xcover7", 40), ("galaxy-xcover6-pro", 25), ("core-m5", 15), ("xp10", 10), ("galaxy-xcover-pro", 10)),
    ),
    OrgSpec(
        "logistique-demo",
        "Logistique Démo SARL",
        "LOG",
        (("entrepot-lyon", "Entrepôt Lyon", 3), ("entrepot-lille", "Entrepôt Lille", 2)),
        (("tc58", 30), ("tc53", 25), ("tc21", 20), ("ec50", 10), ("ct45", 10), ("ct40", 5)),
    ),
    OrgSpec(
        "energie-reseaux-demo",
        "Énergie Réseaux Démo",
        "ERD",
        (("techniciens", "Techniciens réseau", 4), ("astreinte", "Astreinte", 1)),
        (("core-z5", 35), ("stellar-x5", 25), ("duraforce-ultra-5g", 25), ("xp10", 15)),
    ),
    OrgSpec(
        "securite-exemple",
        "Sécurité Exemple SAS",
        "SEC",
        (("agents", "Agents de sûreté", 1),),
        (("galaxy-xcover7", 50), ("core-m5", 30), ("galaxy-xcover-pro", 20)),
    ),
    OrgSpec(
        "ambulances-demo",
        "Ambulances Démo",
        "AMB",
        (("equipages", "Équipages", 3), ("regulation", "Régulation", 1)),
        (("galaxy-xcover6-pro", 60), ("galaxy-xcover7", 40)),
    ),
    OrgSpec(
        "proprete-urbaine-demo",
        "Propreté Urbaine Démo",
        "PUD",
        (("voirie", "Voirie", 2), ("collecte", "Collecte", 2), ("encadrement", "Encadrement", 1)),
        (("ct45", 40), ("tc21", 30), ("core-m5", 30)),
    ),
]


def organisation_specs(count: int) -> list[OrgSpec]:
    specs = [MINISTRY, *_COMPANIES][:count]
    for number in range(len(specs) + 1, count + 1):
        # Beyond the named companies, plain numbered ones keep the command usable with any --organisations.
        specs.append(
            OrgSpec(
                f"entreprise-demo-{number}",
                f"Entreprise Démo {number} SAS",
                f"E{number:02d}",
                (("terrain", "Terrain", 3), ("siege", "Siège", 1)),
                (("galaxy-xcover7", 40), ("tc53", 30), ("core-z5", 30)),
            )
        )
    return specs


def demo_organisations(count: int = DEFAULT_ORGANISATIONS) -> models.QuerySet[Organisation]:
    """The demo's organisations that exist, for whoever adds people to them later (the run script's managers)."""
    return Organisation.objects.filter(slug__in=[spec.slug for spec in organisation_specs(count)])


def seed_organisations(
    specs: list[OrgSpec], *, result: SeedResult
) -> tuple[dict[str, Organisation], dict[tuple[int, str], Fleet]]:
    orgs = ensure(
        Organisation,
        [Organisation(slug=spec.slug, name=spec.name) for spec in specs],
        Organisation.objects.filter(slug__in=[spec.slug for spec in specs]),
        key=lambda o: o.slug,
        result=result,
    )
    fleets = ensure(
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
    ensure(
        CompliancePolicy,
        policies,
        CompliancePolicy.objects.filter(organisation__in=orgs.values()).only("organisation_id", "fleet_id"),
        key=lambda p: (p.organisation_id, p.fleet_id),
        result=result,
    )
    return orgs, fleets


def seed_managers_and_digests(orgs: dict[str, Organisation], *, now: dt.datetime, result: SeedResult) -> None:
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
    users = ensure(
        user_model,
        wanted_users,
        user_model._default_manager.filter(username__in=[user.username for user in wanted_users]),
        key=lambda user: user.username,
        result=SeedResult(),
    )
    ensure(
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
    ensure(
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


def seed_private_builds(
    ministry: Organisation, device_models: dict[str, DeviceModel], *, now: dt.datetime, result: SeedResult
) -> None:
    """The ministry's in-house OS for its main models: a validated release every other month or so."""
    builds: list[OSBuild] = []
    for slug in MINISTRY.private_models:
        model = device_models[slug]
        line: list[OSBuild] = []
        minor: dict[int, int] = defaultdict(int)
        end = min(now.date(), model.security_support_until or now.date())
        for month in month_starts(add_months(model.launched_on or now.date(), 3), end):
            rng = random.Random(f"minint:{slug}:{month:%Y-%m}")
            if rng.random() < 0.45:
                continue
            version = android_on(model, month)
            minor[version] += 1
            released = moment(month + dt.timedelta(days=rng.randint(18, 35)), rng)
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
        revoke_one(line, random.Random(f"minint:{slug}:revoked"), now=now)
        builds += unique_numbers(line)
    ensure_builds(builds, list(device_models.values()), result=result)
