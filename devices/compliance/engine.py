"""The compliance engine: one set of rules, evaluated in SQL for one device, one model or the whole fleet.

Every path (a check-in, a catalogue change, the periodic sweep) calls :func:`recompute`, which
runs the same statement with a different ``WHERE``. The rules, in order of precedence (the first
that matches wins), are documented in docs/compliance.md ("Statuses") and README.md:

1. ``unknown``        never reported;
2. ``silent``         no check-in for ``max_silence_days`` or more;
3. ``unsupported``    the model is past ``security_support_until``;
4. ``critical``       the patch level (reported, else its build's) is older than ``max_patch_age_days``,
                      whether or not the model or the build is known: it is the one signal needing no catalogue;
5. ``unknown``        neither a patch level nor a known build (catalogue or observed): we cannot judge;
6. ``behind``         a build it should run became due ``grace_days`` or more ago;
7. ``update_pending`` such a build exists, still within its grace;
8. ``up_to_date``     otherwise.

The target build of a device is its organisation's pin for the model if there is one (not revoked, already
released), else the newest non-revoked, already released build of its model that it may run: public builds
and its own organisation's private builds; stable devices take stable builds, beta devices take both. A
build whose ``released_at`` is still to come is no target, no newer build and no build behind until then.
When the model has no such catalogue build and the policy allows it (``use_observed_builds``), the target is
the organisation's newest observed build (by patch level, then first seen) that at least
``observed_build_min_devices`` of its devices run; its first sighting stands for its release.

Which build a device missed is read from builds when its own build is a catalogue build (or an observed
build measured against an observed target); otherwise (no known build, or an observed build measured
against a catalogue target) from patch levels: the device missed the target when the target's patch level
is newer than its own, since the target's release.

Algorithm of :func:`recompute`:

1. One SELECT computes, for every device in scope, its new status, ``behind_since``, target build,
   builds behind, battery status and waiver flag, and keeps only the rows where one of them differs
   from what is stored.
2. Those rows are written and one StatusChange per status transition is inserted:
   on PostgreSQL in the same statement (a data-modifying CTE); the UPDATE only touches a row that
   is still the version read in step 1 (same ``xmin``): a check-in or another recompute that wrote it
   in between already stored fresher values, so stale ones are never written over them and two
   overlapping recomputes cannot both record the same transition. On SQLite, writers are serialised
   (``BEGIN IMMEDIATE``), so the rows read in step 1 are written with two batched statements in the
   same transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.utils import timezone

from devices.choices import BatteryStatus, ComplianceStatus, ObservedBuildState
from devices.compliance.observed import observed_builds_count
from devices.models import Device, ObservedBuild, StatusChange, Waiver
from fleet.models import CompliancePolicy
from updates.models import BuildPin, DeviceModel, OSBuild


def _default(field: str) -> int:
    return CompliancePolicy._meta.get_field(field).default


# Thresholds (and the observed-build switch) used when neither the device's fleet nor its organisation has a policy.
DEFAULT_THRESHOLDS = {
    field: _default(field)
    for field in (
        "grace_days",
        "max_patch_age_days",
        "max_silence_days",
        "battery_max_age_days",
        "battery_min_health_pct",
        "eos_warning_days",
        "use_observed_builds",
        "observed_build_min_devices",
    )
}


@dataclasses.dataclass
class RecomputeResult:
    """What one recompute changed: rows written, and transitions by the status entered."""

    updated: int = 0
    transitions: Counter = dataclasses.field(default_factory=Counter)

    @property
    def transitions_total(self) -> int:
        return sum(self.transitions.values())


class _Dialect:
    """The few date expressions SQL dialects spell differently; everything else is portable SQL."""

    def __init__(self, vendor: str) -> None:
        self.postgres = vendor == "postgresql"

    def ts_at_least_days_before_now(self, column: str, days: str) -> str:
        """``column`` is ``days`` days or more before ``now``."""
        if self.postgres:
            return f"{column} <= %(now)s - ({days}) * INTERVAL '1 day'"
        return f"julianday({column}) <= julianday(%(now)s) - ({days})"

    def date_before_today_minus(self, column: str, days: str, *, inclusive: bool = False) -> str:
        op = "<=" if inclusive else "<"
        if self.postgres:
            return f"{column} {op} CAST(%(today)s AS date) - ({days})"
        return f"{column} {op} date(%(today)s, '-' || ({days}) || ' days')"

    def date_of_ts_plus_days(self, column: str, days: str) -> str:
        if self.postgres:
            return f"CAST(({column} + ({days}) * INTERVAL '1 day') AT TIME ZONE 'UTC' AS date)"
        return f"date({column}, '+' || ({days}) || ' days')"

    def greatest(self, a: str, b: str) -> str:
        return f"GREATEST({a}, {b})" if self.postgres else f"MAX({a}, {b})"

    def distinct(self, a: str, b: str) -> str:
        return f"({a} IS DISTINCT FROM {b})" if self.postgres else f"({a} IS NOT {b})"


def _tables() -> dict[str, str]:
    return {
        "device": Device._meta.db_table,
        "model": DeviceModel._meta.db_table,
        "build": OSBuild._meta.db_table,
        "policy": CompliancePolicy._meta.db_table,
        "pin": BuildPin._meta.db_table,
        "waiver": Waiver._meta.db_table,
        "observed": ObservedBuild._meta.db_table,
        "statuschange": StatusChange._meta.db_table,
    }


# The stored compliance columns, as ``old_<name>`` / ``new_<name>`` in the computed rows.
_WRITTEN = ("status", "behind_since", "latest_build_id", "builds_behind", "battery_status", "is_waived")


def _computed_sql(sql: _Dialect, where: str) -> tuple[str, str]:
    """Step 1 as ``(ctes, select)``: the select yields one row per device in scope whose stored
    compliance is out of date, with its old and new values.

    What depends on the catalogue (target build, when the first missed build became due, builds
    behind) is the same for every device sharing an organisation, model, channel and current build,
    so it is computed once per such combination (a few thousand in a fleet of millions) and joined
    back by hash; per device only the thresholds and dates are compared.
    """
    t = _tables()
    # A build this combination may run: same model, not revoked, already released, public or its own
    # organisation's, stable for stable devices, stable or beta for beta devices.
    eligible = (
        "b.model_id = c.model_key AND b.is_revoked = %(false)s AND b.released_at <= %(now)s"
        " AND (b.organisation_id IS NULL OR b.organisation_id = c.organisation_id)"
        " AND (b.channel = 'stable' OR c.channel = 'beta')"
    )
    # An observed build that may be this combination's target: its organisation's, of its model, neither
    # promoted nor revoked, with a patch level, run by enough of the organisation's devices.
    observed_target = (
        "o.organisation_id = k.organisation_id AND o.model_id = k.model_key"
        f" AND o.state = '{ObservedBuildState.OBSERVED}'"
        " AND o.security_patch_level IS NOT NULL AND o.device_count >= k.observed_build_min_devices"
    )
    # ... and newer than the combination's own observed build (by patch level, then first sighting).
    observed_newer = (
        "o.id <> k.ob_id AND (k.ob_patch_level IS NULL OR o.security_patch_level > k.ob_patch_level"
        " OR (o.security_patch_level = k.ob_patch_level AND o.first_seen_at > k.ob_first_seen_at))"
    )
    in_scope = f"d.retired_at IS NULL AND ({where})"
    # A fleet's policy wins over its organisation's, which wins over the defaults.
    thresholds = ", ".join(
        f"COALESCE(fp.{name}, op.{name}, %(default_{name})s) AS {name}" for name in DEFAULT_THRESHOLDS
    )
    active_waiver = "w.revoked_at IS NULL AND w.granted_at <= %(now)s AND w.expires_at > %(now)s"
    # reported_key: the build number of a device the catalogue has no build for (its observed build's).
    # missed_since: when the first build the device should have installed became due (its release,
    # or its pinning if later); for a device on a revoked build, the revocation at the latest.
    ctes = f"""
        combos AS MATERIALIZED (
            SELECT DISTINCT d.organisation_id, COALESCE(d.fleet_id, 0) AS fleet_key,
                   COALESCE(d.model_id, 0) AS model_key, d.channel, COALESCE(d.current_build_id, 0) AS build_key,
                   CASE WHEN d.current_build_id IS NULL AND d.model_id IS NOT NULL
                        THEN d.reported_build_number ELSE '' END AS reported_key
              FROM {t["device"]} d WHERE {in_scope}
        ),
        candidates AS MATERIALIZED (
            SELECT c.organisation_id, c.fleet_key, c.model_key, c.channel, c.build_key, c.reported_key,
                   {thresholds},
                   m.security_support_until, cb.security_patch_level AS cb_patch_level,
                   cb.released_at AS cb_released_at, cb.is_revoked AS cb_is_revoked,
                   COALESCE(cb.revoked_at, cb.released_at) AS cb_revoked_at,
                   ob.id AS ob_id, ob.security_patch_level AS ob_patch_level, ob.first_seen_at AS ob_first_seen_at,
                   pb.id AS pin_id, pb.released_at AS pin_released_at, bp.pinned_at AS pin_pinned_at,
                   CASE WHEN pb.id IS NOT NULL THEN pb.id ELSE (
                       SELECT b.id FROM {t["build"]} b WHERE {eligible}
                        ORDER BY b.released_at DESC, b.id DESC LIMIT 1
                   ) END AS target_id,
                   (SELECT MIN(b.released_at) FROM {t["build"]} b
                     WHERE {eligible} AND b.released_at > cb.released_at) AS next_released_at,
                   (SELECT COUNT(*) FROM {t["build"]} b
                     WHERE {eligible} AND b.released_at > cb.released_at
                       AND (pb.id IS NULL OR b.released_at <= pb.released_at)) AS newer_count
              FROM combos c
              LEFT JOIN {t["model"]} m ON m.id = c.model_key
              LEFT JOIN {t["build"]} cb ON cb.id = c.build_key
              LEFT JOIN {t["observed"]} ob ON ob.organisation_id = c.organisation_id AND ob.model_id = c.model_key
                        AND ob.build_number = c.reported_key AND ob.state <> '{ObservedBuildState.REVOKED}'
              LEFT JOIN {t["policy"]} fp ON fp.fleet_id = c.fleet_key
              LEFT JOIN {t["policy"]} op ON op.organisation_id = c.organisation_id AND op.fleet_id IS NULL
              LEFT JOIN {t["pin"]} bp ON bp.organisation_id = c.organisation_id AND bp.model_id = c.model_key
              LEFT JOIN {t["build"]} pb ON pb.id = bp.build_id AND pb.is_revoked = %(false)s
                        AND pb.released_at <= %(now)s
        ),
        observed_candidates AS MATERIALIZED (
            SELECT k.*,
                   CASE WHEN k.target_id IS NULL AND k.use_observed_builds = %(true)s THEN (
                       SELECT o.id FROM {t["observed"]} o WHERE {observed_target}
                        ORDER BY o.security_patch_level DESC, o.first_seen_at DESC, o.id DESC LIMIT 1
                   ) END AS observed_target_id,
                   CASE WHEN k.ob_id IS NOT NULL THEN (
                       SELECT MIN(o.first_seen_at) FROM {t["observed"]} o WHERE {observed_target} AND {observed_newer}
                   ) END AS observed_next_seen_at,
                   CASE WHEN k.ob_id IS NOT NULL THEN (
                       SELECT COUNT(*) FROM {t["observed"]} o WHERE {observed_target} AND {observed_newer}
                   ) ELSE 0 END AS observed_newer_count
              FROM candidates k
        ),
        targets AS MATERIALIZED (
            SELECT x.*,
                   CASE WHEN x.missed_since IS NULL THEN 0
                        WHEN x.effective_newer_count < 1 THEN 1 ELSE x.effective_newer_count END AS builds_behind
              FROM (
                SELECT k.*,
                       COALESCE(tb.security_patch_level, tob.security_patch_level) AS target_patch_level,
                       COALESCE(tb.released_at, tob.first_seen_at) AS target_released_at,
                       CASE WHEN k.build_key <> 0 THEN k.newer_count ELSE k.observed_newer_count END
                         AS effective_newer_count,
                       CASE WHEN k.build_key = 0 AND (k.ob_id IS NULL OR k.observed_target_id IS NULL) THEN 1 ELSE 0 END
                         AS by_patch,
                       CASE WHEN k.build_key <> 0 OR k.ob_id IS NOT NULL THEN 1 ELSE 0 END AS known_build,
                       CASE
                         WHEN k.build_key = 0 THEN CASE
                             WHEN k.ob_id IS NULL OR k.observed_target_id IS NULL OR k.ob_id = k.observed_target_id
                               THEN NULL
                             ELSE k.observed_next_seen_at END
                         WHEN k.target_id IS NULL OR k.target_id = k.build_key THEN NULL
                         WHEN k.pin_id IS NOT NULL THEN CASE
                             WHEN k.pin_released_at > k.cb_released_at
                               THEN {sql.greatest("k.pin_released_at", "k.pin_pinned_at")}
                             WHEN k.cb_is_revoked = %(true)s THEN k.cb_revoked_at
                             ELSE NULL END
                         WHEN k.cb_is_revoked = %(true)s THEN COALESCE(k.next_released_at, k.cb_revoked_at)
                         ELSE k.next_released_at
                       END AS missed_since
                  FROM observed_candidates k
                  LEFT JOIN {t["build"]} tb ON tb.id = k.target_id
                  LEFT JOIN {t["observed"]} tob ON tob.id = k.observed_target_id
              ) x
        ),
        device_waivers AS MATERIALIZED (
            SELECT DISTINCT w.device_id FROM {t["waiver"]} w WHERE w.device_id IS NOT NULL AND {active_waiver}
        ),
        fleet_waivers AS MATERIALIZED (
            SELECT DISTINCT w.fleet_id FROM {t["waiver"]} w WHERE w.fleet_id IS NOT NULL AND {active_waiver}
        )
    """
    threshold_columns = ", ".join(f"t.{name}" for name in DEFAULT_THRESHOLDS)
    # The version of the row read (PostgreSQL): the write skips a row someone changed since (see step 2).
    row_version, carried_version = ("d.xmin AS row_version, ", "y.row_version, ") if sql.postgres else ("", "")
    # A device judged by patch level (no known build, or an observed build against a catalogue target) missed
    # the target when the target's patch level is newer than its own.
    patch_level = "COALESCE(d.security_patch_level, t.cb_patch_level, t.ob_patch_level)"
    missed_by_patch = f"t.by_patch = 1 AND {patch_level} < t.target_patch_level"
    per_device = f"""
        SELECT {row_version}d.id, d.organisation_id, d.model_id, d.current_build_id, d.last_check_in_at,
               d.battery_health_pct, d.battery_installed_on,
               d.compliance_status AS old_status, d.behind_since AS old_behind_since,
               d.latest_build_id AS old_latest_build_id, d.builds_behind AS old_builds_behind,
               d.battery_status AS old_battery_status, d.is_waived AS old_is_waived,
               t.security_support_until, {patch_level} AS patch_level, t.known_build,
               {threshold_columns}, t.target_id,
               CASE WHEN t.by_patch = 0 THEN t.missed_since WHEN {missed_by_patch} THEN t.target_released_at END
                 AS missed_since,
               CASE WHEN t.by_patch = 0 THEN t.builds_behind WHEN {missed_by_patch} THEN 1 ELSE 0 END AS builds_behind,
               CASE WHEN d.id IN (SELECT device_id FROM device_waivers)
                      OR d.fleet_id IN (SELECT fleet_id FROM fleet_waivers) THEN %(true)s ELSE %(false)s END
                 AS new_is_waived
          FROM {t["device"]} d
          JOIN targets t ON t.organisation_id = d.organisation_id AND t.fleet_key = COALESCE(d.fleet_id, 0)
                        AND t.model_key = COALESCE(d.model_id, 0) AND t.channel = d.channel
                        AND t.build_key = COALESCE(d.current_build_id, 0)
                        AND t.reported_key = CASE WHEN d.current_build_id IS NULL AND d.model_id IS NOT NULL
                                                  THEN d.reported_build_number ELSE '' END
         WHERE {in_scope}
    """
    grace_over = sql.ts_at_least_days_before_now("y.missed_since", "y.grace_days")
    s = ComplianceStatus
    b = BatteryStatus
    battery_old = sql.date_before_today_minus("y.battery_installed_on", "y.battery_max_age_days", inclusive=True)
    computed = f"""
        SELECT {carried_version}y.id, y.organisation_id, y.old_status, y.old_behind_since, y.old_latest_build_id,
               y.old_builds_behind, y.old_battery_status, y.old_is_waived,
               CASE
                 WHEN y.last_check_in_at IS NULL THEN '{s.UNKNOWN}'
                 WHEN {sql.ts_at_least_days_before_now("y.last_check_in_at", "y.max_silence_days")} THEN '{s.SILENT}'
                 WHEN y.security_support_until IS NOT NULL AND y.security_support_until < %(today)s
                   THEN '{s.UNSUPPORTED}'
                 WHEN y.patch_level IS NOT NULL
                  AND {sql.date_before_today_minus("y.patch_level", "y.max_patch_age_days")} THEN '{s.CRITICAL}'
                 WHEN y.patch_level IS NULL AND y.known_build = 0 THEN '{s.UNKNOWN}'
                 WHEN y.missed_since IS NOT NULL AND {grace_over} THEN '{s.BEHIND}'
                 WHEN y.missed_since IS NOT NULL THEN '{s.UPDATE_PENDING}'
                 ELSE '{s.UP_TO_DATE}'
               END AS new_status,
               CASE WHEN y.missed_since IS NOT NULL AND {grace_over}
                 THEN {sql.date_of_ts_plus_days("y.missed_since", "y.grace_days")} END AS new_behind_since,
               y.target_id AS new_latest_build_id,
               y.builds_behind AS new_builds_behind,
               CASE
                 WHEN y.battery_health_pct IS NOT NULL AND y.battery_health_pct < y.battery_min_health_pct
                   THEN '{b.REPLACE_NOW}'
                 WHEN y.battery_installed_on IS NOT NULL AND {battery_old} THEN '{b.DUE}'
                 WHEN y.battery_health_pct IS NULL AND y.battery_installed_on IS NULL THEN '{b.UNKNOWN}'
                 ELSE '{b.OK}'
               END AS new_battery_status,
               y.new_is_waived
          FROM ({per_device}) y
    """
    changed = " OR ".join(sql.distinct(f"z.old_{name}", f"z.new_{name}") for name in _WRITTEN)
    return ctes, f"SELECT z.* FROM ({computed}) z WHERE {changed}"


def _params(now: dt.datetime, *, reason: str, extra: dict) -> dict:
    ops = connection.ops
    return {
        "now": ops.adapt_datetimefield_value(now) if connection.vendor == "sqlite" else now,
        "today": now.date().isoformat() if connection.vendor == "sqlite" else now.date(),
        "true": True,
        "false": False,
        "reason": reason,
        **{f"default_{name}": value for name, value in DEFAULT_THRESHOLDS.items()},
        **extra,
    }


def _scope(
    *,
    devices: QuerySet | None = None,
    device_ids: Iterable[int] | None,
    model_id: int | None,
    organisation_id: int | None,
    fleet_id: int | None,
    id_range: tuple[int, int] | None = None,
) -> tuple[str, dict]:
    clauses, params = [], {}
    if id_range is not None:
        # The sweep's unit of work: two bounds walk the primary key's index, where a list of 100,000 ids
        # would be a parameter as large as the range it names.
        clauses.append("d.id BETWEEN %(id_lo)s AND %(id_hi)s")
        params.update(id_lo=id_range[0], id_hi=id_range[1])
    if devices is not None:
        # Any device queryset (an admin selection of 200,000 rows) as a subquery, not a list of ids.
        sql, subquery_params = devices.order_by().values("pk").query.sql_with_params()
        names = [f"subquery_{i}" for i in range(len(subquery_params))]
        clauses.append(f"d.id IN ({sql % tuple(f'%({n})s' for n in names)})")
        params.update(dict(zip(names, subquery_params, strict=True)))
    if device_ids is not None:
        ids = sorted(set(device_ids))
        if not ids:
            return "1 = 0", {}
        if connection.vendor == "postgresql":
            # One array parameter, not a thousand: psycopg splices named parameters one by one.
            clauses.append("d.id = ANY(%(device_ids)s)")
            params["device_ids"] = ids
        else:
            names = [f"device_{i}" for i in range(len(ids))]
            clauses.append(f"d.id IN ({', '.join(f'%({n})s' for n in names)})")
            params.update(dict(zip(names, ids, strict=True)))
    if model_id is not None:
        clauses.append("d.model_id = %(model_id)s")
        params["model_id"] = model_id
    if organisation_id is not None:
        clauses.append("d.organisation_id = %(organisation_id)s")
        params["organisation_id"] = organisation_id
    if fleet_id is not None:
        clauses.append("d.fleet_id = %(fleet_id)s")
        params["fleet_id"] = fleet_id
    return (" AND ".join(clauses) or "1 = 1"), params


@transaction.atomic
def recompute(
    *,
    devices: QuerySet | None = None,
    device_ids: Iterable[int] | None = None,
    model_id: int | None = None,
    organisation_id: int | None = None,
    fleet_id: int | None = None,
    id_range: tuple[int, int] | None = None,
    now: dt.datetime | None = None,
    reason: str = "",
) -> RecomputeResult:
    """Bring the stored compliance of the devices in scope up to date; all of them when no scope is given.

    ``id_range`` is ``(lo, hi)``, both included: the devices whose id lies between them (one range of a sweep).
    """
    now = now or timezone.now()
    where, scope_params = _scope(
        devices=devices,
        device_ids=device_ids,
        model_id=model_id,
        organisation_id=organisation_id,
        fleet_id=fleet_id,
        id_range=id_range,
    )
    params = _params(now, reason=reason[:255], extra=scope_params)
    sql = _Dialect(connection.vendor)
    ctes, computed = _computed_sql(sql, where)
    if sql.postgres:
        return _write_postgres(ctes, computed, params)
    return _write_sqlite(f"WITH {ctes} {computed}", params)


@transaction.atomic
def model_recompute(*, model_id: int, reason: str = "catalogue", now: dt.datetime | None = None) -> RecomputeResult:
    """After a catalogue change of one model (a build published, revoked or pinned, support dates moved):

    1. devices of the model that reported a build number the catalogue did not know yet are linked to the
       build it now has (their organisation's private build first), in one UPDATE;
    2. the model's observed builds get their device counts (one UPDATE);
    3. the model's devices are re-evaluated.
    """
    link_reported_builds(model_id=model_id)
    observed_builds_count(model_id=model_id)
    return recompute(model_id=model_id, now=now, reason=reason)


def link_reported_builds(*, model_id: int) -> int:
    """Links the devices of a model whose reported build number had no catalogue build to the build of
    that number they may run (see ``OSBuild.objects.visible_to``), if there is one now; returns how many."""
    build = (
        OSBuild.objects.visible_to(OuterRef("organisation_id"))
        .filter(model_id=OuterRef("model_id"), build_number=OuterRef("reported_build_number"))
        .private_first()
        .values("pk")[:1]
    )
    return (
        Device.objects.filter(model_id=model_id, current_build__isnull=True)
        .exclude(reported_build_number="")
        .filter(Exists(build))
        .update(current_build=Subquery(build))
    )


def _write_postgres(ctes: str, computed: str, params: dict) -> RecomputeResult:
    t = _tables()
    statement = f"""
        WITH {ctes},
        computed AS MATERIALIZED ({computed}),
        changed AS (
            UPDATE {t["device"]} d
               SET compliance_status = c.new_status,
                   status_since = CASE WHEN d.compliance_status <> c.new_status THEN %(now)s ELSE d.status_since END,
                   behind_since = c.new_behind_since,
                   latest_build_id = c.new_latest_build_id,
                   builds_behind = c.new_builds_behind,
                   battery_status = c.new_battery_status,
                   is_waived = c.new_is_waived
              FROM computed c
             WHERE d.id = c.id AND d.xmin = c.row_version
         RETURNING d.id, d.organisation_id, c.old_status, c.new_status
        ),
        inserted AS (
            INSERT INTO {t["statuschange"]} (device_id, organisation_id, from_status, to_status, changed_at, reason)
            SELECT id, organisation_id, old_status, new_status, %(now)s, %(reason)s
              FROM changed WHERE old_status <> new_status
            RETURNING to_status
        )
        SELECT NULL, COUNT(*) FROM changed
        UNION ALL
        SELECT to_status, COUNT(*) FROM inserted GROUP BY to_status
    """
    result = RecomputeResult()
    with connection.cursor() as cursor:
        # For this transaction only: the planner cannot see that the materialised combinations are a few
        # thousand rows, and would sort the whole fleet for a merge join (spilling to disk with the
        # default 4 MB work_mem) where hashing the combinations is the obvious plan; and compiling the
        # statement with JIT costs more than it saves on a statement run once.
        cursor.execute("SET LOCAL work_mem = '128MB'; SET LOCAL enable_mergejoin = off; SET LOCAL jit = off")
        cursor.execute(statement, params)
        for status, count in cursor.fetchall():
            if status is None:
                result.updated = count
            else:
                result.transitions[status] = count
    return result


def _write_sqlite(computed: str, params: dict) -> RecomputeResult:
    t = _tables()
    result = RecomputeResult()
    now_db = params["now"]
    with connection.cursor() as cursor:
        cursor.execute(computed, params)
        columns = [col[0] for col in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        if not rows:
            return result
        cursor.executemany(
            f"""UPDATE {t["device"]}
                   SET compliance_status = %s,
                       status_since = CASE WHEN compliance_status <> %s THEN %s ELSE status_since END,
                       behind_since = %s, latest_build_id = %s, builds_behind = %s, battery_status = %s,
                       is_waived = %s
                 WHERE id = %s""",
            [
                (
                    r["new_status"],
                    r["new_status"],
                    now_db,
                    r["new_behind_since"],
                    r["new_latest_build_id"],
                    r["new_builds_behind"],
                    r["new_battery_status"],
                    r["new_is_waived"],
                    r["id"],
                )
                for r in rows
            ],
        )
        transitions = [r for r in rows if r["old_status"] != r["new_status"]]
        cursor.executemany(
            f"""INSERT INTO {t["statuschange"]}
                       (device_id, organisation_id, from_status, to_status, changed_at, reason)
                VALUES (%s, %s, %s, %s, %s, %s)""",
            [
                (r["id"], r["organisation_id"], r["old_status"], r["new_status"], now_db, params["reason"])
                for r in transitions
            ],
        )
    result.updated = len(rows)
    result.transitions.update(r["new_status"] for r in transitions)
    return result
