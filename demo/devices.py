"""Step 3 of the demo seed, what devices are drawn from: the catalogue and organisations as written, and the
identities (serial, IMEI) of device number ``i``.

Device number ``i``'s organisation and serial depend on ``i`` alone, so a rerun recognises the devices it wrote.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import accumulate

from django.utils.translation import gettext_lazy

from demo.base import timestamp, uniform
from demo.catalogue import MODEL_SPECS, ModelSpec
from demo.organisations import MINISTRY_SLUG, OrgSpec
from fleet.models import Fleet, Organisation
from updates.choices import Channel
from updates.models import DeviceModel, OSBuild

# gettext_lazy rather than the usual ``_``: this module unpacks tuples into ``_`` throwaways.
_WORN_BATTERY = gettext_lazy("Worn battery (health %(health)d%%).")
_OTHER_BATTERY_REASONS = (
    gettext_lazy("Swollen battery found during maintenance."),
    gettext_lazy("Battery damaged by a fall."),
)


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
    spec: ModelSpec
    launched: float
    supported_until: float
    stable: _Line
    beta: _Line
    private: _Line
    service: str  # who replaces batteries besides the organisation itself


@dataclass
class _OrgContext:
    org: Organisation
    spec: OrgSpec
    fleets: list[Fleet]
    fleet_weights: list[int]  # cumulative, as random.choices takes them fastest
    models: list[_ModelContext]
    model_weights: list[int]  # cumulative


@dataclass
class DeviceContext:
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
        specs: list[OrgSpec],
        orgs: dict[str, Organisation],
        fleets: dict[tuple[int, str], Fleet],
        device_models: dict[str, DeviceModel],
        *,
        now: dt.datetime,
        seed: int,
    ) -> DeviceContext:
        """Reads the builds back from the database, so devices follow the catalogue as it is, not as planned."""
        ministry = orgs[MINISTRY_SLUG]
        lines: dict[tuple[int, int | None, str], _Line] = defaultdict(_Line)
        rows = (
            OSBuild.objects.visible_to(ministry)
            .filter(model__in=device_models.values())
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
                spec=MODEL_SPECS[slug],
                launched=timestamp(launched),
                supported_until=timestamp(model.security_support_until) if model.security_support_until else 1e12,
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
        u = uniform(index, salt=1)
        for org, weight in zip(self.orgs, self.org_weights, strict=True):
            if u < weight:
                return org
            u -= weight
        return self.orgs[-1]


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
