"""Generates a large synthetic fleet directly in PostgreSQL with set-based SQL (generate_series), for benchmarks.

Not the demo fleet (``seed_demo`` is believable; this is big and fast): N devices over M models of
24 monthly builds each, spread over a few organisations, with state that the engine can evaluate.
"""

from __future__ import annotations

import datetime as dt
import time

from django.db import connection
from django.utils import timezone

from devices.models import CheckIn, Device, StatusChange
from fleet.models import CompliancePolicy, Organisation
from updates.models import DeviceModel, Manufacturer, OSBuild

BUILDS_PER_MODEL = 24


def generate(*, devices: int, models: int = 50, organisations: int = 10, now: dt.datetime | None = None) -> dict:
    """Empties the fleet tables and fills them; returns timings. PostgreSQL only."""
    assert connection.vendor == "postgresql", "the benchmark generator needs PostgreSQL"
    now = now or timezone.now()
    started = time.monotonic()
    tables = [
        StatusChange,
        CheckIn,
        Device,
        OSBuild,
        DeviceModel,
        Manufacturer,
        CompliancePolicy,
        Organisation,
    ]
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(m._meta.db_table for m in tables) + " RESTART IDENTITY CASCADE")
    orgs = Organisation.objects.bulk_create(
        Organisation(name=f"Bench organisation {i}", slug=f"bench-{i}") for i in range(organisations)
    )
    CompliancePolicy.objects.bulk_create(CompliancePolicy(organisation=o) for o in orgs)
    makers = Manufacturer.objects.bulk_create(Manufacturer(name=f"Maker {i}", slug=f"maker-{i}") for i in range(5))
    device_models = DeviceModel.objects.bulk_create(
        DeviceModel(
            manufacturer=makers[i % len(makers)],
            name=f"Rugged {i}",
            slug=f"rugged-{i}",
            launched_on=(now - dt.timedelta(days=800)).date(),
            # A few models out of support, the rest supported for years.
            security_support_until=(now + dt.timedelta(days=-10 if i % 25 == 24 else 900)).date(),
        )
        for i in range(models)
    )
    OSBuild.objects.bulk_create(
        OSBuild(
            model=m,
            build_number=f"R{m.pk}.{b:02d}",
            android_version="14",
            security_patch_level=(now - dt.timedelta(days=30 * (BUILDS_PER_MODEL - b) + 3)).date(),
            released_at=now - dt.timedelta(days=30 * (BUILDS_PER_MODEL - b)),
        )
        for m in device_models
        for b in range(1, BUILDS_PER_MODEL + 1)
    )
    with connection.cursor() as cursor:
        # Each device: a model, a build among the model's last six (mostly the newest), a check-in
        # within the last 20 days, a battery of 0-3 years.
        cursor.execute(
            f"""
            INSERT INTO {Device._meta.db_table} (
                organisation_id, serial, asset_tag, assignee, model_id, channel, enrolled_at, current_build_id,
                reported_build_number, android_version, security_patch_level, last_check_in_at,
                battery_health_pct, battery_installed_on, compliance_status, status_since, builds_behind,
                battery_status, is_waived)
            SELECT o.id, 'SN' || lpad(g::text, 9, '0'), '', '', b.model_id, 'stable', %(now)s, b.id,
                   b.build_number, b.android_version, b.security_patch_level,
                   %(now)s - (g %% 480) * INTERVAL '1 hour',
                   70 + (g %% 31), CAST(%(now)s AS date) - (g %% 1100),
                   'unknown', %(now)s, 0, 'unknown', FALSE
              FROM generate_series(1, %(devices)s) AS g
              JOIN {Organisation._meta.db_table} o ON o.slug = 'bench-' || (g %% %(orgs)s)
              JOIN {OSBuild._meta.db_table} b
                ON b.model_id = (SELECT MIN(id) FROM {DeviceModel._meta.db_table}) + (g %% %(models)s)
               AND b.build_number = 'R' || b.model_id || '.' ||
                   lpad((%(builds)s - CASE WHEN g %% 10 < 7 THEN 0 ELSE g %% 6 END)::text, 2, '0')
            """,
            {"now": now, "devices": devices, "orgs": organisations, "models": models, "builds": BUILDS_PER_MODEL},
        )
        cursor.execute(f"ANALYZE {Device._meta.db_table}")
        cursor.execute(f"ANALYZE {OSBuild._meta.db_table}")
    return {"generate_seconds": round(time.monotonic() - started, 2), "devices": Device.objects.count()}


def generate_check_ins(*, per_device: int, now: dt.datetime | None = None) -> dict:
    """Adds ``per_device`` check-ins to every device, a day apart, the newest matching its current build.

    One INSERT ... SELECT over generate_series: 10 million rows in a few minutes, not hours.
    """
    assert connection.vendor == "postgresql", "the benchmark generator needs PostgreSQL"
    now = now or timezone.now()
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {CheckIn._meta.db_table} (
                device_id, reported_at, received_at, source, build_number, build_id, android_version,
                security_patch_level, battery_level_pct, battery_health_pct, agent_version)
            SELECT d.id, d.last_check_in_at - k * INTERVAL '1 day', d.last_check_in_at - k * INTERVAL '1 day',
                   'api', d.reported_build_number, d.current_build_id, d.android_version,
                   d.security_patch_level, 20 + (d.id + k) %% 80, d.battery_health_pct, ''
              FROM {Device._meta.db_table} d, generate_series(0, %(n)s - 1) AS k
            """,
            {"n": per_device},
        )
        rows = cursor.rowcount
        cursor.execute(f"ANALYZE {CheckIn._meta.db_table}")
    return {"check_ins": rows, "check_ins_seconds": round(time.monotonic() - started, 2)}
