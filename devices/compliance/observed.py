"""Observed builds: what the check-in ingest records of builds the catalogue lacks, and their device counts.

The ingest records them with one ``INSERT ... ON CONFLICT DO UPDATE`` per batch (:func:`observed_builds_record`);
how many devices run each one is counted by :func:`observed_builds_count`, which the sweep runs for every
organisation before its ranges and a model's recompute runs for that model: counting at every check-in would
cost the ingest a scan of the organisation's devices per batch, and the sweep comes every 15 minutes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

from django.db import connection

from common import bulk
from devices.choices import ObservedBuildState
from devices.models import Device, ObservedBuild


@dataclasses.dataclass(frozen=True)
class Sighting:
    """One report of a build the catalogue lacks: which build, and what the device said with it."""

    model_id: int
    build_number: str
    reported_at: dt.datetime
    android_version: str = ""
    security_patch_level: dt.date | None = None


def observed_builds_record(*, organisation_id: int, sightings: Iterable[Sighting]) -> int:
    """Records the sightings as observed builds of the organisation in one statement; returns the rows written.

    The batch's sightings are first collapsed to one row per (model, build number): first and last seen are
    the earliest and latest reports, the Android version and patch level the newest report's that gave
    them. An existing row widens its first/last seen and takes the newer report's values; its state
    (observed, promoted, revoked) never changes here. Rows go in key order, so concurrent batches queue.
    """
    rows: dict[tuple[int, str], dict] = {}
    for sighting in sorted(sightings, key=lambda s: s.reported_at):
        key = (sighting.model_id, sighting.build_number)
        row = rows.setdefault(
            key,
            {
                "organisation": organisation_id,
                "model": sighting.model_id,
                "build_number": sighting.build_number,
                "android_version": "",
                "security_patch_level": None,
                "first_seen_at": sighting.reported_at,
                "last_seen_at": sighting.reported_at,
                "device_count": 0,
                "state": ObservedBuildState.OBSERVED,
            },
        )
        row["last_seen_at"] = sighting.reported_at
        if sighting.android_version:
            row["android_version"] = sighting.android_version
        if sighting.security_patch_level is not None:
            row["security_patch_level"] = sighting.security_patch_level
    if not rows:
        return 0
    table = ObservedBuild._meta.db_table
    greatest, least = ("GREATEST", "LEAST") if connection.vendor == "postgresql" else ("MAX", "MIN")
    newer = f"EXCLUDED.last_seen_at >= {table}.last_seen_at"
    conflict = f"""(organisation_id, model_id, build_number) DO UPDATE SET
        first_seen_at = {least}({table}.first_seen_at, EXCLUDED.first_seen_at),
        last_seen_at = {greatest}({table}.last_seen_at, EXCLUDED.last_seen_at),
        android_version = CASE WHEN {newer} AND EXCLUDED.android_version <> '' THEN EXCLUDED.android_version
                               WHEN {table}.android_version = '' THEN EXCLUDED.android_version
                               ELSE {table}.android_version END,
        security_patch_level = CASE WHEN {newer}
                                    THEN COALESCE(EXCLUDED.security_patch_level, {table}.security_patch_level)
                                    ELSE COALESCE({table}.security_patch_level, EXCLUDED.security_patch_level) END
    """
    returned = bulk.insert_returning(
        ObservedBuild, [rows[key] for key in sorted(rows)], conflict=conflict, returning=("id",)
    )
    return len(returned)


def observed_builds_count(*, model_id: int | None = None) -> int:
    """Sets every observed build's ``device_count`` (those of one model, when given) in one UPDATE: the
    organisation's active devices of the model that report its number and have no catalogue build."""
    device = Device._meta.db_table
    observed = ObservedBuild._meta.db_table
    only_model, params = ("", [])
    if model_id is not None:
        only_model = "AND d.model_id = %s"
        params = [model_id, model_id]
    counted = f"""COALESCE((SELECT c.n FROM counts c WHERE c.organisation_id = {observed}.organisation_id
                AND c.model_id = {observed}.model_id AND c.build_number = {observed}.build_number), 0)"""
    sql = f"""
        WITH counts AS MATERIALIZED (
            SELECT d.organisation_id, d.model_id, d.reported_build_number AS build_number, COUNT(*) AS n
              FROM {device} d
             WHERE d.retired_at IS NULL AND d.current_build_id IS NULL AND d.model_id IS NOT NULL
               AND d.reported_build_number <> '' {only_model}
             GROUP BY d.organisation_id, d.model_id, d.reported_build_number
        )
        UPDATE {observed} SET device_count = {counted}
         WHERE device_count <> {counted} {"AND model_id = %s" if model_id is not None else ""}
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
