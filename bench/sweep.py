"""Benchmark of the compliance sweep on PostgreSQL, next to its floor measured in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fleetpatch_bench python bench/sweep.py [--devices 1000000]

1. Generate N devices over 50 models (bench/fleet_data.py) and settle their statuses with one sweep.
2. Make 5 % of the devices go silent (their last check-in moved 40 days back).
3. Time, alternately and each inside a transaction rolled back so both see the same data:
   - the floor: one hand-written UPDATE that sets exactly those rows to 'silent';
   - the sweep: ``devices.compliance.engine.recompute()`` over every device (all rules, StatusChange rows).
4. Time, alternately in the same way, the whole periodic task with one worker:
   - single: today's task before the fan-out, one recompute() statement over the fleet, then the daily
     snapshot and the tallies;
   - fanned out: ``updates.sweep_compliance`` run eagerly (``task_always_eager``), so its SweepRun and its
     ``updates.sweep_range`` tasks of ``--range-size`` ids run one after the other in this process: one
     worker, minus the broker's round trips (a few milliseconds per range).
5. Print the medians and their ratios; write them to bench/results/sweep.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--range-size", type=int, default=None, help="ids per range (default: SWEEP_RANGE_SIZE)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from bench.fleet_data import generate
    from config.celery import app
    from devices.compliance.engine import recompute
    from devices.compliance.tallies import snapshot_statuses, tally_devices
    from devices.compliance.tasks import sweep_compliance
    from devices.models import Device

    if connection.vendor != "postgresql":
        sys.exit("bench/sweep.py needs DATABASE_URL=postgres://... (a database it may fill)")
    call_command("migrate", verbosity=0)
    now = timezone.now()
    figures: dict = {"devices": args.devices, "models": 50, "database": "postgresql", "date": now.isoformat()}
    figures.update(generate(devices=args.devices, now=now))

    started = time.monotonic()
    settle = recompute(now=now, reason="bench settle")
    figures["first_full_evaluation_seconds"] = round(time.monotonic() - started, 2)
    print(
        f"generated {args.devices:,} devices; first evaluation wrote {settle.updated:,} rows "
        f"in {figures['first_full_evaluation_seconds']} s"
    )

    table = Device._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_check_in_at = %s WHERE id %% 20 = 0 AND compliance_status <> 'silent'",
            [now - dt.timedelta(days=40)],
        )
        changing = cursor.rowcount
        cursor.execute(f"VACUUM ANALYZE {table}")  # Django runs in autocommit here: VACUUM is allowed
    figures["devices_changing_status"] = changing
    print(f"{changing:,} devices ({changing / args.devices:.1%}) made silent")

    def floor() -> float:
        with transaction.atomic():
            started = time.monotonic()
            with connection.cursor() as cursor:
                cursor.execute(
                    f"""UPDATE {table} SET compliance_status = 'silent', status_since = %(now)s
                         WHERE last_check_in_at <= %(now)s - INTERVAL '30 days' AND compliance_status <> 'silent'""",
                    {"now": now},
                )
                assert cursor.rowcount == changing, cursor.rowcount
            elapsed = time.monotonic() - started
            transaction.set_rollback(True)
        return elapsed

    def sweep() -> float:
        with transaction.atomic():
            started = time.monotonic()
            result = recompute(now=now, reason="bench sweep")
            elapsed = time.monotonic() - started
            assert result.transitions.get("silent") == changing, result
            transaction.set_rollback(True)
        return elapsed

    def single_task() -> float:
        with transaction.atomic():
            started = time.monotonic()
            result = recompute(reason="sweep")
            snapshot_statuses()
            tally_devices()
            elapsed = time.monotonic() - started
            assert result.transitions.get("silent") == changing, result
            transaction.set_rollback(True)
        return elapsed

    settings.SWEEP_RANGE_SIZE = args.range_size or settings.SWEEP_RANGE_SIZE
    app.conf.task_always_eager = True
    logging.getLogger("celery").setLevel(logging.WARNING)  # one line per task would drown the figures
    logging.getLogger("devices.compliance.sweeps").setLevel(logging.WARNING)

    def fanned_task() -> float:
        with transaction.atomic():
            started = time.monotonic()
            summary = sweep_compliance.apply().get()
            elapsed = time.monotonic() - started
            assert summary["status"] == "succeeded", summary
            assert summary["transitions"].get("silent") == changing, summary
            figures["ranges"] = summary["ranges"]
            transaction.set_rollback(True)
        return elapsed

    floors, sweeps, singles, fanned = [], [], [], []
    for i in range(args.repeat):
        with connection.cursor() as cursor:
            # The rolled-back runs leave dead row versions; each pair starts from the same clean table, as a
            # sweep every 15 minutes does once autovacuum has passed.
            cursor.execute(f"VACUUM {table}")
        floors.append(floor())
        sweeps.append(sweep())
        if i % 2:  # alternate which goes first, so neither always finds the other's pages in the cache
            fanned.append(fanned_task())
            singles.append(single_task())
        else:
            singles.append(single_task())
            fanned.append(fanned_task())
        print(
            f"run {i + 1}: floor {floors[-1]:.2f} s, sweep {sweeps[-1]:.2f} s, "
            f"task single {singles[-1]:.2f} s, task fanned out {fanned[-1]:.2f} s"
        )
    figures["floor_update_seconds"] = round(statistics.median(floors), 3)
    figures["sweep_seconds"] = round(statistics.median(sweeps), 3)
    figures["ratio_sweep_to_floor"] = round(figures["sweep_seconds"] / figures["floor_update_seconds"], 2)
    figures["sweep_devices_per_second"] = round(args.devices / figures["sweep_seconds"])
    figures["target"] = "sweep within 3x of the floor"
    figures["range_size"] = settings.SWEEP_RANGE_SIZE
    figures["task_single_statement_seconds"] = round(statistics.median(singles), 3)
    figures["task_fanned_out_one_worker_seconds"] = round(statistics.median(fanned), 3)
    figures["ratio_fanned_out_to_single"] = round(
        figures["task_fanned_out_one_worker_seconds"] / figures["task_single_statement_seconds"], 2
    )
    # Each pair ran back to back: the median of the pairs' ratios resists the load of a shared machine
    # drifting between pairs better than the ratio of the medians does.
    figures["ratio_fanned_out_to_single_median_of_pairs"] = round(
        statistics.median(f / s for f, s in zip(fanned, singles, strict=True)), 2
    )
    figures["runs_task_single_seconds"] = [round(x, 2) for x in singles]
    figures["runs_task_fanned_out_seconds"] = [round(x, 2) for x in fanned]
    figures["fan_out_target"] = "fanned out on one worker no slower than the single statement (ratio <= 1)"
    print(
        f"sweep {figures['sweep_seconds']} s vs floor {figures['floor_update_seconds']} s: "
        f"ratio {figures['ratio_sweep_to_floor']} (target <= 3)"
    )
    print(
        f"sweep task, one worker: fanned out over {figures['ranges']} ranges of {figures['range_size']:,} ids "
        f"{figures['task_fanned_out_one_worker_seconds']} s vs single statement "
        f"{figures['task_single_statement_seconds']} s: ratio {figures['ratio_fanned_out_to_single']}, "
        f"median of the pairs' ratios {figures['ratio_fanned_out_to_single_median_of_pairs']} (target <= 1)"
    )
    out = ROOT / "bench" / "results" / "sweep.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
