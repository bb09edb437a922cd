"""The compliance dashboard of one organisation: a handful of aggregate queries, whatever its size.

Every figure comes with the admin URL of the devices behind it, so a manager goes from a number to
the list in one click. Charts are inline SVG built here (no JavaScript, no CDN: installations are
often offline).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter, defaultdict
from urllib.parse import urlencode

from django.db.models import Sum
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from devices.choices import BatteryStatus, ComplianceStatus
from devices.compliance.rollouts import ROLLOUT_WINDOW_DAYS
from devices.compliance.tallies import PATCH_BUCKETS, devices_tallied
from devices.models import BuildRollout, ComplianceSnapshot, DeviceTally
from fleet.models import CompliancePolicy, Organisation
from updates.models import DeviceModel

# Statuses a manager must act on; the trend line counts these.
NEEDS_ACTION = (
    ComplianceStatus.BEHIND,
    ComplianceStatus.CRITICAL,
    ComplianceStatus.UNSUPPORTED,
    ComplianceStatus.SILENT,
)
STATUS_COLOURS = {
    ComplianceStatus.UP_TO_DATE: "#2e7d32",
    ComplianceStatus.UPDATE_PENDING: "#9e9d24",
    ComplianceStatus.BEHIND: "#ef6c00",
    ComplianceStatus.CRITICAL: "#c62828",
    ComplianceStatus.UNSUPPORTED: "#6a1b9a",
    ComplianceStatus.SILENT: "#546e7a",
    ComplianceStatus.UNKNOWN: "#9e9e9e",
}
# Patch age buckets (days): label, lower bound (exclusive), upper bound (inclusive); from the engine's tallies.
PATCH_AGE_BUCKETS = tuple(
    (label, PATCH_BUCKETS[index - 1][1] if index else None, upper) for index, (label, upper) in enumerate(PATCH_BUCKETS)
)
TREND_DAYS = 90


@dataclasses.dataclass(frozen=True)
class Bar:
    label: str
    count: int
    url: str
    colour: str = "#1565c0"
    share: float = 0.0  # of the total, 0..1


@dataclasses.dataclass
class Dashboard:
    organisation: Organisation
    total: int
    statuses: list[Bar]
    batteries: list[Bar]
    patch_ages: list[Bar]
    waived: int
    models: list[dict]
    end_of_support: list[dict]
    eos_warning_days: int
    trend: list[tuple[dt.date, int]]
    computed_at: dt.datetime | None = None
    rollouts: list[dict] = dataclasses.field(default_factory=list)
    trend_svg_points: str = ""
    trend_dots: list[tuple[str, str, dt.date, int]] = dataclasses.field(default_factory=list)


def devices_url(organisation: Organisation, **filters: object) -> str:
    params = {"organisation__id__exact": organisation.pk, **filters}
    return f"{reverse('admin:devices_device_changelist')}?{urlencode(params)}"


def _bars(counts: Counter, choices: list[tuple[str, str]], total: int, url, colours=None) -> list[Bar]:
    return [
        Bar(
            label=str(label),
            count=counts.get(value, 0),
            url=url(value),
            colour=(colours or {}).get(value, "#1565c0"),
            share=(counts.get(value, 0) / total) if total else 0.0,
        )
        for value, label in choices
    ]


def build_dashboard(*, organisation: Organisation, today: dt.date) -> Dashboard:
    """Four small queries whatever the organisation's size: its tallies (kept by the sweep; counted now,
    without storing them, if it has none yet), the models they name, its policy's warning window, and the
    trend. A read: it writes nothing."""
    tallies = list(DeviceTally.objects.filter(organisation=organisation))
    if not tallies:
        # Not tallied yet (a new organisation, before its first sweep): counted now, nothing written.
        tallies = devices_tallied(organisation_id=organisation.pk)

    statuses: Counter = Counter()
    batteries: Counter = Counter()
    patch_ages: Counter = Counter()
    per_model: dict[int, Counter] = defaultdict(Counter)
    waived = 0
    for tally in tallies:
        statuses[tally.compliance_status] += tally.count
        batteries[tally.battery_status] += tally.count
        patch_ages[tally.patch_bucket] += tally.count
        waived += tally.count if tally.is_waived else 0
        if tally.model_id is not None:
            per_model[tally.model_id]["devices"] += tally.count
            per_model[tally.model_id]["on_target"] += tally.count if tally.on_target else 0
    total = sum(statuses.values())

    status_bars = _bars(
        statuses,
        ComplianceStatus.choices,
        total,
        lambda s: devices_url(organisation, compliance_status__exact=s),
        STATUS_COLOURS,
    )
    battery_bars = _bars(
        batteries,
        BatteryStatus.choices,
        total,
        lambda b: devices_url(organisation, battery_status__exact=b),
    )
    patch_choices = [(label, _("%(days)s days") % {"days": label}) for label, _lower, _upper in PATCH_AGE_BUCKETS]
    patch_choices.append(("unknown", _("unknown")))
    patch_bars = _bars(patch_ages, patch_choices, total, lambda label: devices_url(organisation, patch_age=label))

    eos_warning_days = (
        CompliancePolicy.objects.filter(organisation=organisation, fleet__isnull=True)
        .values_list("eos_warning_days", flat=True)
        .first()
        or CompliancePolicy._meta.get_field("eos_warning_days").default
    )
    catalogue = DeviceModel.objects.select_related("manufacturer").in_bulk(list(per_model))
    models = []
    for model_id, counts in sorted(per_model.items(), key=lambda item: -item[1]["devices"])[:20]:
        model = catalogue[model_id]
        models.append(
            {
                "model_id": model_id,
                "model__name": model.name,
                "model__manufacturer__name": model.manufacturer.name,
                "devices": counts["devices"],
                "on_target": counts["on_target"],
                "share": counts["on_target"] / counts["devices"],
                "url": devices_url(organisation, model__id__exact=model_id),
            }
        )
    horizon = today + dt.timedelta(days=eos_warning_days)
    end_of_support = [
        {
            "model": model,
            "devices": per_model[model.pk]["devices"],
            "ended": model.security_support_until < today,
            "url": devices_url(organisation, model__id__exact=model.pk),
        }
        for model in sorted(catalogue.values(), key=lambda m: (m.security_support_until or dt.date.max, m.pk))
        if model.security_support_until is not None and model.security_support_until <= horizon
    ]

    since = today - dt.timedelta(days=TREND_DAYS)
    trend = list(
        ComplianceSnapshot.objects.filter(organisation=organisation, day__gt=since, status__in=NEEDS_ACTION)
        .values_list("day")
        .annotate(total=Sum("count"))
        .order_by("day")
    )

    dashboard = Dashboard(
        organisation=organisation,
        total=total,
        statuses=status_bars,
        batteries=battery_bars,
        patch_ages=patch_bars,
        waived=waived,
        models=models,
        end_of_support=end_of_support,
        eos_warning_days=eos_warning_days,
        trend=trend,
        computed_at=max((t.computed_at for t in tallies), default=None),
    )
    dashboard.rollouts = _rollouts(organisation)
    dashboard.trend_dots = _points(trend, since=since, days=TREND_DAYS)
    dashboard.trend_svg_points = " ".join(f"{x},{y}" for x, y, _day, _count in dashboard.trend_dots)
    return dashboard


ROLLOUT_COLOURS = ("#1565c0", "#2e7d32", "#ef6c00")


def _rollouts(organisation: Organisation, *, builds: int = 3, width: int = 300, height: int = 100) -> list[dict]:
    """The rollout curves of the organisation's most recently released builds (one query)."""
    points = list(
        BuildRollout.objects.filter(organisation=organisation)
        .select_related("build__model__manufacturer")
        .order_by("-build__released_at", "build_id", "days_since_release")
    )
    curves: dict[int, dict] = {}
    for point in points:
        if point.build_id not in curves:
            if len(curves) == builds:
                continue
            curves[point.build_id] = {"build": point.build, "points": [], "share": 0.0}
        curve = curves[point.build_id]
        share = point.installed / point.eligible if point.eligible else 0.0
        curve["share"] = share
        curve["installed"], curve["eligible"] = point.installed, point.eligible
        x = point.days_since_release / ROLLOUT_WINDOW_DAYS * width
        curve["points"].append(f"{x:.1f},{height - share * height:.1f}")
    for curve, colour in zip(curves.values(), ROLLOUT_COLOURS, strict=False):
        curve["colour"] = colour
        curve["svg_points"] = " ".join(curve["points"])
        curve["url"] = devices_url(organisation, build=curve["build"].build_number)
    return list(curves.values())


def _points(
    trend: list[tuple[dt.date, int]], *, since: dt.date, days: int, width: int = 600, height: int = 120
) -> list[tuple[str, str, dt.date, int]]:
    """SVG coordinates of the trend: x by day since ``since``, y scaled to the highest count."""
    top = max((count for _day, count in trend), default=0) or 1
    return [
        (f"{(day - since).days / days * width:.1f}", f"{height - (count / top) * (height - 10):.1f}", day, count)
        for day, count in trend
    ]
