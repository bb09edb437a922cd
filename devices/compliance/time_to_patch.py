"""Time to patch: how many days after its release each device first reported a build."""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
from collections import defaultdict

from django.db import connection
from django.db.models import Min

from devices.models import CheckIn, Device
from updates.models import OSBuild


@dataclasses.dataclass(frozen=True)
class TimeToPatch:
    """How many devices installed a build, and how many days after its release (median, 90th percentile)."""

    build_id: int
    installed_devices: int
    median_days: float | None
    p90_days: float | None


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks: the same definition as PostgreSQL's percentile_cont."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    position = (len(sorted_values) - 1) * fraction
    lower = int(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * (position - lower)


# Reports of a build this long before its release still count (day 0: beta testers, staged rollouts). The
# bound lets PostgreSQL read only the check-in partitions from then on; a device that reported a build only
# earlier than this before its release is not counted.
PRE_RELEASE_REPORTS = dt.timedelta(days=365)


def time_to_patch(*, build_ids: list[int], organisation_id: int | None = None) -> dict[int, TimeToPatch]:
    """For each build: the devices whose check-ins show it, and the delay from its release to each
    device's first report of it. On PostgreSQL the percentiles are computed in the database.

    The check-ins read start ``PRE_RELEASE_REPORTS`` before the oldest build's release, a value passed to
    the query (not a subquery) so the planner prunes the check-in partitions of earlier months.
    """
    if not build_ids:
        return {}
    oldest_release = OSBuild.objects.filter(pk__in=build_ids).aggregate(oldest=Min("released_at"))["oldest"]
    if oldest_release is None:
        return {build_id: TimeToPatch(build_id, 0, None, None) for build_id in build_ids}
    checkin = CheckIn._meta.db_table
    build = OSBuild._meta.db_table
    device = Device._meta.db_table
    params: list = [*build_ids, oldest_release - PRE_RELEASE_REPORTS]
    placeholders = ", ".join(["%s"] * len(build_ids))
    org_filter = ""
    if organisation_id is not None:
        org_filter = f" AND c.device_id IN (SELECT id FROM {device} WHERE organisation_id = %s)"
        params.append(organisation_id)
    if connection.vendor == "postgresql":
        delay = "EXTRACT(EPOCH FROM (f.first_seen - b.released_at)) / 86400.0"
    else:
        delay = "julianday(f.first_seen) - julianday(b.released_at)"
    first_seen_sql = f"""
        SELECT c.build_id, c.device_id, MIN(c.reported_at) AS first_seen
          FROM {checkin} c
         WHERE c.build_id IN ({placeholders}) AND c.reported_at >= %s{org_filter}
         GROUP BY c.build_id, c.device_id
    """
    # A device that reported the build before its official release (a beta tester) counts as day 0.
    delays_sql = f"""
        SELECT f.build_id, CASE WHEN {delay} < 0 THEN 0 ELSE {delay} END AS days
          FROM ({first_seen_sql}) f JOIN {build} b ON b.id = f.build_id
    """
    results: dict[int, TimeToPatch] = {}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"""SELECT build_id, COUNT(*),
                           percentile_cont(0.5) WITHIN GROUP (ORDER BY days),
                           percentile_cont(0.9) WITHIN GROUP (ORDER BY days)
                      FROM ({delays_sql}) d GROUP BY build_id""",
                params,
            )
            for build_id, count, median, p90 in cursor.fetchall():
                results[build_id] = TimeToPatch(build_id, count, float(median), float(p90))
        else:
            cursor.execute(delays_sql, params)
            by_build: dict[int, list[float]] = defaultdict(list)
            for build_id, days in cursor.fetchall():
                by_build[build_id].append(float(days))
            for build_id, values in by_build.items():
                values.sort()
                results[build_id] = TimeToPatch(
                    build_id, len(values), statistics.median(values), _percentile(values, 0.9)
                )
    for build_id in build_ids:
        results.setdefault(build_id, TimeToPatch(build_id, 0, None, None))
    return results
