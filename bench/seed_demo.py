"""Benchmark of ``seed_demo``: a fresh PostgreSQL database, 100,000 devices, then the same run again.

Usage (from the project's root; PostgreSQL must answer, the database is dropped and recreated)::

    .venv/bin/python bench/seed_demo.py [--devices 100000] [--database-url postgres://postgres@127.0.0.1:5432/fp_bench_seed]

Prints devices/s and check-ins/s and writes them to ``bench/results/seed_demo.json``. Unless ``--skip-bulk-create``,
it then measures the same seed written with ``bulk_create`` instead of ``COPY`` on a fresh database again: that is
the measurement behind ``demo.bulk``'s choice of ``COPY``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/fp_bench_seed"


def recreate_database(url: str) -> None:
    """Drops and creates the database named in ``url``, connecting to the server's ``postgres`` database."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--organisations", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "seed_demo.json")
    parser.add_argument("--skip-bulk-create", action="store_true", help="measure only the COPY path")
    args = parser.parse_args()
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("the benchmark measures PostgreSQL: give a postgres:// URL")

    # Other work on the machine skews the figures: record how busy it was.
    load_before = os.getloadavg()[0]
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("SECRET_KEY", "bench-only-insecure-key")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from demo import bulk
    from demo.services import seed_demo
    from devices.models import CheckIn, Device

    def measure() -> dict[str, object]:
        recreate_database(args.database_url)
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        first = seed_demo(devices=args.devices, organisations=args.organisations)
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        second = seed_demo(devices=args.devices, organisations=args.organisations)
        rerun_seconds = time.perf_counter() - started
        devices, check_ins = first.created.get(Device, 0), first.created.get(CheckIn, 0)
        connection.close()
        return {
            "devices": devices,
            "check_ins": check_ins,
            "rows_created": {model._meta.label: count for model, count in first.created.items()},
            "seconds": round(seconds, 2),
            "devices_per_second": round(devices / seconds),
            "check_ins_per_second": round(check_ins / seconds),
            "rerun_seconds": round(rerun_seconds, 2),
            "rerun_rows_created": sum(second.created.values()),
        }

    figures: dict[str, object] = {
        "what": "seed_demo on a fresh PostgreSQL database, then the same run again (idempotent: creates nothing)",
        **measure(),
    }
    print(
        f"COPY: {figures['devices']} devices and {figures['check_ins']} check-ins in {figures['seconds']} s: "
        f"{figures['devices_per_second']} devices/s, {figures['check_ins_per_second']} check-ins/s; "
        f"rerun {figures['rerun_seconds']} s creating {figures['rerun_rows_created']} rows"
    )
    if not args.skip_bulk_create:
        bulk.COPY_ON_POSTGRESQL = False
        figures["with_bulk_create_instead_of_copy"] = bulk = measure()
        print(
            f"bulk_create: {bulk['seconds']} s: {bulk['devices_per_second']} devices/s, "
            f"{bulk['check_ins_per_second']} check-ins/s"
        )
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        figures["postgresql"] = cursor.fetchone()[0]
    figures.update(
        python=platform.python_version(),
        cpus=os.cpu_count(),
        load_average_before=load_before,
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    connection.close()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"Written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
