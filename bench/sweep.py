"""Benchmark of the compliance sweep on PostgreSQL, next to its floor measured in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fleetpatch_bench python bench/sweep.py [--devices 1000000]

1. Generate N devices over 50 models (bench/fleet_data.py) and settle their statuses with one sweep.
2. Make 5 % of the devices go silent (their last check-in moved 40 days back).
3. Time, alternately and each inside a transaction rolled back so both see the same data:
   - the floor: one hand-written UPDATE that sets exactly those rows to 'silent';
   - the sweep: ``updates.compliance.recompute()`` over every device (all rules, StatusChange rows).
4. Print the medians and their ratio; write them to bench/results/sweep.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
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
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from bench.fleet_data import generate
    from devices.models import Device
    from updates.compliance import recompute

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

    floors, sweeps = [], []
    for i in range(args.repeat):
        floors.append(floor())
        sweeps.append(sweep())
        print(f"run {i + 1}: floor {floors[-1]:.2f} s, sweep {sweeps[-1]:.2f} s")
    figures["floor_update_seconds"] = round(statistics.median(floors), 3)
    figures["sweep_seconds"] = round(statistics.median(sweeps), 3)
    figures["ratio_sweep_to_floor"] = round(figures["sweep_seconds"] / figures["floor_update_seconds"], 2)
    figures["sweep_devices_per_second"] = round(args.devices / figures["sweep_seconds"])
    figures["target"] = "sweep within 3x of the floor"
    print(
        f"sweep {figures['sweep_seconds']} s vs floor {figures['floor_update_seconds']} s: "
        f"ratio {figures['ratio_sweep_to_floor']} (target <= 3)"
    )
    out = ROOT / "bench" / "results" / "sweep.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
