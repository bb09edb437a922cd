"""The compliance dashboard of one organisation: a handful of aggregate queries, whatever its size.

Every figure comes with the admin URL of the devices behind it, so a manager goes from a number to
the list in one click. Charts are inline SVG built here (no JavaScript, no CDN: installations are
often offline).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from urllib.parse import urlencode

from django.db.models import Count, Q, Sum
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from devices.choices import BatteryStatus, ComplianceStatus
from devices.models import ComplianceSnapshot, Device
from fleet.models import CompliancePolicy, Organisation
from updates.selectors import models_reaching_end_of_support

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
# Patch age buckets (days): label, lower bound (exclusive), upper bound (inclusive).
PATCH_AGE_BUCKETS = (
    ("0-30", None, 30),
    ("31-60", 30, 60),
    ("61-90", 60, 90),
    ("91-180", 90, 180),
    ("180+", 180, None),
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
    trend_svg_points: str = ""
    trend_dots: list[tuple[str, str, dt.date, int]] = dataclasses.field(default_factory=list)


def devices_url(organisation: Organisation, **filters: object) -> str:
    params = {"organisation__id__exact": organisation.pk, **filters}
    return f"{reverse('admin:devices_device_changelist')}?{urlencode(params)}"


def _bars(counts: dict[str, int], choices: list[tuple[str, str]], total: int, url, colours=None) -> list[Bar]:
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
    """Five queries: one aggregate over the organisation's devices, one per-model breakdown, the models
    reaching end of support, the policy's warning window, and the trend's daily snapshots."""
    active = Device.objects.filter(organisation=organisation, retired_at__isnull=True)
    aggregates = {f"status_{s}": Count("id", filter=Q(compliance_status=s)) for s in ComplianceStatus.values}
    aggregates |= {f"battery_{b}": Count("id", filter=Q(battery_status=b)) for b in BatteryStatus.values}
    for label, lower, upper in PATCH_AGE_BUCKETS:
        condition = Q(security_patch_level__isnull=False)
        if upper is not None:
            condition &= Q(security_patch_level__gte=today - dt.timedelta(days=upper))
        if lower is not None:
            condition &= Q(security_patch_level__lt=today - dt.timedelta(days=lower))
        aggregates[f"patch_{label}"] = Count("id", filter=condition)
    aggregates["patch_unknown"] = Count("id", filter=Q(security_patch_level__isnull=True))
    aggregates["waived"] = Count("id", filter=Q(is_waived=True))
    aggregates["total"] = Count("id")
    row = active.aggregate(**aggregates)
    total = row["total"]

    statuses = _bars(
        {s: row[f"status_{s}"] for s in ComplianceStatus.values},
        ComplianceStatus.choices,
        total,
        lambda s: devices_url(organisation, compliance_status__exact=s),
        STATUS_COLOURS,
    )
    batteries = _bars(
        {b: row[f"battery_{b}"] for b in BatteryStatus.values},
        BatteryStatus.choices,
        total,
        lambda b: devices_url(organisation, battery_status__exact=b),
    )
    patch_choices = [(label, _("%(days)s days") % {"days": label}) for label, _lower, _upper in PATCH_AGE_BUCKETS]
    patch_choices.append(("unknown", _("unknown")))
    patch_ages = _bars(
        {label: row[f"patch_{label}"] for label, _label in patch_choices},
        patch_choices,
        total,
        lambda label: devices_url(organisation, patch_age=label),
    )

    models = list(
        active.filter(model__isnull=False)
        .values("model_id", "model__name", "model__manufacturer__name")
        .annotate(
            devices=Count("id"),
            on_target=Count(
                "id",
                filter=Q(current_build__isnull=False, latest_build__isnull=False, builds_behind=0)
                & ~Q(compliance_status=ComplianceStatus.UNKNOWN),
            ),
        )
        .order_by("-devices")[:20]
    )
    for model in models:
        model["share"] = model["on_target"] / model["devices"] if model["devices"] else 0.0
        model["url"] = devices_url(organisation, model__id__exact=model["model_id"])

    eos_warning_days = (
        CompliancePolicy.objects.filter(organisation=organisation, fleet__isnull=True)
        .values_list("eos_warning_days", flat=True)
        .first()
        or CompliancePolicy._meta.get_field("eos_warning_days").default
    )
    end_of_support = [
        {
            "model": model,
            "devices": model.device_count,
            "ended": model.security_support_until < today,
            "url": devices_url(organisation, model__id__exact=model.pk),
        }
        for model in models_reaching_end_of_support(
            organisation_id=organisation.pk, today=today, within_days=eos_warning_days
        )
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
        statuses=statuses,
        batteries=batteries,
        patch_ages=patch_ages,
        waived=row["waived"],
        models=models,
        end_of_support=end_of_support,
        eos_warning_days=eos_warning_days,
        trend=trend,
    )
    dashboard.trend_dots = _points(trend, since=since, days=TREND_DAYS)
    dashboard.trend_svg_points = " ".join(f"{x},{y}" for x, y, _day, _count in dashboard.trend_dots)
    return dashboard


def _points(
    trend: list[tuple[dt.date, int]], *, since: dt.date, days: int, width: int = 600, height: int = 120
) -> list[tuple[str, str, dt.date, int]]:
    """SVG coordinates of the trend: x by day since ``since``, y scaled to the highest count."""
    top = max((count for _day, count in trend), default=0) or 1
    return [
        (f"{(day - since).days / days * width:.1f}", f"{height - (count / top) * (height - 10):.1f}", day, count)
        for day, count in trend
    ]
