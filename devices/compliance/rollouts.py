"""Rollout curves: how fast each organisation's devices installed the builds released lately."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from devices.models import BuildRollout, CheckIn, Device
from updates.models import OSBuild

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
