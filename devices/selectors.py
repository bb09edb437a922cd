"""Reads about one device: its timeline (check-ins, build changes, battery events, status changes, waivers)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict

from django.db.models import Count, Q, QuerySet
from django.utils.translation import gettext

from devices.choices import BatteryStatus, ComplianceStatus
from devices.models import BatteryEvent, CheckIn, Device, StatusChange, Waiver
from fleet.models import CompliancePolicy, Fleet
from updates.models import DeviceModel

TIMELINE_PAGE = 50
BATTERY_TREND_POINTS = 30
# The check-ins of a timeline page are first looked for in this window before the page's cursor: a bound on
# reported_at, known when the query is planned, lets PostgreSQL read only those months' partitions. A device
# reporting daily fills a page from it; a quieter one costs one more query, over what lies before the window.
RECENT_CHECK_INS = dt.timedelta(days=92)


@dataclasses.dataclass(frozen=True)
class TimelineEvent:
    at: dt.datetime
    kind: str  # check_in, build_change, battery, status, waiver
    title: str
    detail: str = ""


@dataclasses.dataclass
class TimelinePage:
    events: list[TimelineEvent]
    older_than: dt.datetime | None  # cursor of the next (older) page, None on the last page


def device_timeline(*, device: Device, before: dt.datetime | None = None, limit: int = TIMELINE_PAGE) -> TimelinePage:
    """One page of the device's history, newest first, merged from every source.

    Each source is read newest-first from its (device, time) index, at most ``limit + 1`` rows
    older than ``before``; the merge keeps ``limit`` events and every event sharing the last one's
    instant, so the next page (``before`` = that instant) neither repeats nor skips any.
    Four indexed queries whatever the length of the history (five when the device reported fewer check-ins
    than a page in the ``RECENT_CHECK_INS`` before the cursor or its last check-in).
    """

    def window(queryset: QuerySet, field: str, size: int = limit + 1) -> QuerySet:
        if before is not None:
            queryset = queryset.filter(**{f"{field}__lt": before})
        return queryset.order_by(f"-{field}")[:size]

    events: list[TimelineEvent] = []
    # One extra check-in: the build before the oldest one shown tells whether that one was a change.
    fetched = newest_check_ins(
        CheckIn.objects.filter(device=device), before=before, newest=device.last_check_in_at, size=limit + 2
    )
    for index, newer in enumerate(fetched[: limit + 1]):
        previous = fetched[index + 1] if index + 1 < len(fetched) else None
        events.append(
            TimelineEvent(
                at=newer.reported_at,
                kind="check_in",
                title=gettext("Check-in (%(source)s)") % {"source": newer.get_source_display()},
                detail=gettext("build %(build)s, patch level %(patch)s, battery %(level)s%% / health %(health)s%%")
                % {
                    "build": newer.build_number or "-",
                    "patch": newer.security_patch_level or "-",
                    "level": "-" if newer.battery_level_pct is None else newer.battery_level_pct,
                    "health": "-" if newer.battery_health_pct is None else newer.battery_health_pct,
                },
            )
        )
        if previous is not None and newer.build_number and newer.build_number != previous.build_number:
            events.append(
                TimelineEvent(
                    at=newer.reported_at,
                    kind="build_change",
                    title=gettext("Build changed"),
                    detail=gettext("%(old)s → %(new)s")
                    % {"old": previous.build_number or "-", "new": newer.build_number},
                )
            )
    for event in window(BatteryEvent.objects.filter(device=device), "occurred_at"):
        events.append(
            TimelineEvent(
                at=event.occurred_at,
                kind="battery",
                title=event.get_kind_display(),
                detail=", ".join(
                    part
                    for part in (
                        event.part_serial,
                        event.reason,
                        event.performed_by,
                        "" if event.health_pct is None else gettext("health %(pct)s%%") % {"pct": event.health_pct},
                    )
                    if part
                ),
            )
        )
    for change in window(StatusChange.objects.filter(device=device), "changed_at"):
        events.append(
            TimelineEvent(
                at=change.changed_at,
                kind="status",
                title=gettext("Status: %(old)s → %(new)s")
                % {"old": change.get_from_status_display(), "new": change.get_to_status_display()},
                detail=change.reason,
            )
        )
    covering = Q(device=device) | (Q(fleet_id=device.fleet_id) if device.fleet_id else Q(pk__in=[]))
    for waiver in window(Waiver.objects.filter(covering), "granted_at"):
        events.append(
            TimelineEvent(
                at=waiver.granted_at,
                kind="waiver",
                title=gettext("Waiver granted") if waiver.device_id else gettext("Fleet waiver granted"),
                detail=gettext("%(reason)s — until %(until)s%(revoked)s")
                % {
                    "reason": waiver.reason,
                    "until": waiver.expires_at.date(),
                    "revoked": gettext(" (revoked)") if waiver.revoked_at else "",
                },
            )
        )

    events.sort(key=lambda e: e.at, reverse=True)
    if len(events) <= limit:
        return TimelinePage(events=events, older_than=None)
    cut = events[limit - 1].at
    page = [e for e in events if e.at >= cut]
    return TimelinePage(events=page, older_than=cut)


def newest_check_ins(
    check_ins: QuerySet[CheckIn], *, before: dt.datetime | None, newest: dt.datetime | None, size: int
) -> list[CheckIn]:
    """The ``size`` newest of ``check_ins`` reported before ``before`` (or ever), newest first.

    Two bounded reads instead of one open-ended one, so that on PostgreSQL each touches only the monthly
    partitions of its range: the ``RECENT_CHECK_INS`` before the cursor, then, only when that did not fill
    ``size``, everything older (newest first, stopping at ``size``). Without a cursor the window ends at
    ``newest`` (the device's last check-in); a device that never reported is read in one open query.
    """
    anchor = before or newest
    if anchor is None:
        return list(check_ins.order_by("-reported_at", "-id")[:size])
    # Clamped: a row stored before the edge bounded dates (reported in year 1) must not overflow the window.
    earliest = dt.datetime.min.replace(tzinfo=dt.UTC)
    recent_from = anchor - RECENT_CHECK_INS if anchor - earliest > RECENT_CHECK_INS else earliest
    recent = check_ins.filter(reported_at__gte=recent_from)
    if before is not None:
        recent = recent.filter(reported_at__lt=before)
    rows = list(recent.order_by("-reported_at", "-id")[:size])
    if len(rows) < size:
        older = check_ins.filter(reported_at__lt=recent_from).order_by("-reported_at", "-id")
        rows.extend(older[: size - len(rows)])
    return rows


def battery_health_trend(*, device: Device, points: int = BATTERY_TREND_POINTS) -> list[tuple[dt.datetime, int]]:
    """The last reported battery health readings, oldest first (one indexed query)."""
    rows = (
        CheckIn.objects.filter(device=device, battery_health_pct__isnull=False)
        .order_by("-reported_at")
        .values_list("reported_at", "battery_health_pct")[:points]
    )
    return list(reversed(rows))


def models_reaching_end_of_support(*, organisation_id: int, today: dt.date, within_days: int) -> QuerySet[DeviceModel]:
    """Models of the organisation's devices whose security support ends within ``within_days`` (or has
    ended), each annotated with ``device_count`` (its active devices in the organisation)."""
    active = Q(devices__organisation_id=organisation_id, devices__retired_at__isnull=True)
    return (
        DeviceModel.objects.filter(security_support_until__lte=today + dt.timedelta(days=within_days))
        .annotate(device_count=Count("devices", filter=active))
        .filter(device_count__gt=0)
        .select_related("manufacturer")
        .order_by("security_support_until")
    )


def models_reaching_end_of_support_by_organisation(*, today: dt.date) -> dict[int, list[dict]]:
    """For every organisation: the models of its active devices whose security support ends within its
    policy's warning window (or has ended), with device counts. One query, whatever the number of
    organisations."""
    windows = dict(
        CompliancePolicy.objects.filter(fleet__isnull=True).values_list("organisation_id", "eos_warning_days")
    )
    default_window = CompliancePolicy._meta.get_field("eos_warning_days").default
    widest = max([default_window, *windows.values()])
    rows = (
        Device.objects.filter(
            retired_at__isnull=True, model__security_support_until__lte=today + dt.timedelta(days=widest)
        )
        .values(
            "organisation_id", "model_id", "model__name", "model__manufacturer__name", "model__security_support_until"
        )
        .annotate(device_count=Count("id"))
        .order_by("organisation_id", "model__security_support_until")
    )
    result: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        window = windows.get(row["organisation_id"], default_window)
        if row["model__security_support_until"] <= today + dt.timedelta(days=window):
            result[row["organisation_id"]].append(row)
    return dict(result)


def _empty_counts() -> dict:
    return {
        "total": 0,
        "by_status": dict.fromkeys(ComplianceStatus.values, 0),
        "by_battery_status": dict.fromkeys(BatteryStatus.values, 0),
        "waived": 0,
    }


def _add(counts: dict, row: dict) -> None:
    counts["total"] += row["n"]
    counts["by_status"][row["compliance_status"]] += row["n"]
    counts["by_battery_status"][row["battery_status"]] += row["n"]
    if row["is_waived"]:
        counts["waived"] += row["n"]


@dataclasses.dataclass(frozen=True)
class ComplianceSummary:
    """Counts of an organisation's active devices: for the whole organisation, and per fleet (every fleet,
    by name, then None for the devices in no fleet, if any)."""

    organisation: dict
    fleets: list[tuple[Fleet | None, dict]]


def compliance_summary(*, organisation_id: int) -> ComplianceSummary:
    """One GROUP BY for every count, one query for the fleets' names (fleets without devices included)."""
    rows = (
        Device.objects.filter(organisation_id=organisation_id, retired_at__isnull=True)
        .values("fleet_id", "compliance_status", "battery_status", "is_waived")
        .annotate(n=Count("id"))
        .order_by()
    )
    organisation = _empty_counts()
    per_fleet: dict[int | None, dict] = defaultdict(_empty_counts)
    for row in rows:
        _add(organisation, row)
        _add(per_fleet[row["fleet_id"]], row)
    fleets: list[tuple[Fleet | None, dict]] = [
        (fleet, per_fleet.get(fleet.pk, _empty_counts()))
        for fleet in Fleet.objects.filter(organisation_id=organisation_id).order_by("name")
    ]
    if None in per_fleet:
        fleets.append((None, per_fleet[None]))
    return ComplianceSummary(organisation=organisation, fleets=fleets)
