"""Benchmark of ``import_devices``: a 200,000-row French Excel CSV into a fresh PostgreSQL database.

Usage (from the project's root; PostgreSQL must answer, the database is dropped and recreated)::

    .venv/bin/python bench/import_devices.py [--rows 200000] [--sample 2000] \
        [--database-url postgres://postgres@127.0.0.1:5432/fp_imports_bench]

Measures, in one run on one database: the preview (dry run) of the file, its first import (every row
created), the same file again (every row unchanged), a file where 10 % of the rows changed, and the
baseline: the naive per-row ORM path (``devices.services.device_enrol`` for each row: validate, save,
recompute) over ``--sample`` rows. Prints the figures and writes them to ``bench/results/import_devices.json``;
the ratio to the baseline is the meaningful figure on a shared machine. Target: 200,000 rows under 60 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/fp_imports_bench"
MODELS = [("Crosscall", f"Core-Z{n}") for n in range(1, 11)] + [("Zebra", f"TC{n}") for n in range(50, 60)]


def imei(n: int) -> str:
    body = f"35{n:012d}"
    for digit in "0123456789":
        candidate = body + digit
        total = 0
        for position, char in enumerate(reversed(candidate)):
            value = int(char) * (2 if position % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return candidate
    raise AssertionError


def inventory(rows: int, *, seed: int, changed_share: float = 0.0, offset: int = 0) -> bytes:
    """A French Excel export: semicolons, Windows-1252, dd/mm/yyyy dates, models spelled every which way."""
    rng = random.Random(seed)
    lines = ["N° de série;IMEI;Modèle;N° d'inventaire;Flotte;Utilisateur;Build;Niveau de correctif;Date batterie"]
    for i in range(offset, offset + rows):
        manufacturer, model = MODELS[i % len(MODELS)]
        spelled = rng.choice([model, model.upper(), model.replace("-", " ").lower(), f"{manufacturer} {model}"])
        changed = rng.random() < changed_share
        lines.append(
            ";".join(
                [
                    f"SN{i:08d}",
                    imei(i),
                    spelled,
                    f"INV-{i:07d}" + ("-B" if changed else ""),
                    f"Unité {(i + changed) % 40:02d}",  # a changed row moves to the next unit (a recompute)
                    f"Agent n°{i}",
                    f"{model}.240105.004",
                    "05/01/2024",
                    (dt.date(2022, 1, 1) + dt.timedelta(days=i % 900)).strftime("%d/%m/%Y"),
                ]
            )
        )
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def recreate_database(url: str) -> None:
    from urllib.parse import urlsplit, urlunsplit

    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    admin_url = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as connection:
        name = sql.Identifier(parts.path.lstrip("/"))
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--sample", type=int, default=2_000, help="rows imported by the naive per-row baseline")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "import_devices.json")
    args = parser.parse_args()
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("the benchmark measures PostgreSQL: give a postgres:// URL")

    load_before = os.getloadavg()[0]
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("SECRET_KEY", "bench-only-insecure-key")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    recreate_database(args.database_url)

    import django

    django.setup()
    from django.core.management import call_command

    from devices.imports import columns
    from devices.imports.services import devices_import
    from devices.models import Device
    from devices.services import device_enrol
    from fleet.models import Fleet, Organisation
    from updates.models import DeviceModel, Manufacturer, OSBuild

    call_command("migrate", verbosity=0)
    for manufacturer_name, model_name in MODELS:
        manufacturer, _ = Manufacturer.objects.get_or_create(name=manufacturer_name, slug=manufacturer_name.lower())
        model = DeviceModel.objects.create(manufacturer=manufacturer, name=model_name, slug=model_name.lower())
        OSBuild.objects.create(
            model=model,
            build_number=f"{model_name}.240105.004",
            android_version="14",
            security_patch_level=dt.date(2024, 1, 5),
            released_at=dt.datetime(2024, 1, 20, tzinfo=dt.UTC),
        )
    organisation = Organisation.objects.create(name="Ministère (bench)", slug="bench")
    first_file = inventory(args.rows, seed=1)
    # 10 % of the rows change their asset tag and their fleet (whose policy may differ: they are recomputed).
    changed_file = inventory(args.rows, seed=2, changed_share=0.10)
    figures: dict[str, object] = {"rows": args.rows, "file_bytes": len(first_file)}

    def timed(label: str, data: bytes, **kwargs: object) -> float:
        started, cpu_started = time.perf_counter(), time.process_time()
        result = devices_import(organisation=organisation, data=data, **kwargs)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        counts = result.counts()
        steps = {step: round(value, 2) for step, value in result.timings.items()}
        figures[label] = {
            "seconds": round(seconds, 2),
            "rows_per_second": round(args.rows / seconds),
            **counts,
            "seconds_per_step": steps,
            # CPU time of this process (parsing, validation, planning in Python): the part other work on the
            # machine does not inflate as much as the wall-clock time, which also waits for PostgreSQL.
            "python_cpu_seconds": round(cpu_seconds, 2),
        }
        print(
            f"{label:>12}: {seconds:7.2f} s ({cpu_seconds:.1f} s CPU), {args.rows / seconds:9,.0f} rows/s"
            f"  {counts}  {steps}"
        )
        return seconds

    timed("preview", first_file, dry_run=True)
    first = timed("first", first_file)
    timed("reimport", first_file)
    timed("changed_10pc", changed_file)
    assert Device.objects.filter(organisation=organisation).count() == args.rows

    # Baseline: the per-row ORM path (one enrolment service call per row) over a sample, in another organisation.
    baseline_organisation = Organisation.objects.create(name="Baseline (bench)", slug="baseline")
    fleets = {
        f"Unité {n:02d}": Fleet.objects.create(organisation=baseline_organisation, name=f"Unité {n:02d}", slug=f"u{n}")
        for n in range(40)
    }
    models = {columns.fold_key(m.name): m for m in DeviceModel.objects.all()}
    started = time.perf_counter()
    for i in range(args.sample):
        _manufacturer, model_name = MODELS[i % len(MODELS)]
        device_enrol(
            organisation=baseline_organisation,
            serial=f"SN{i:08d}",
            imei=imei(i),
            asset_tag=f"INV-{i:07d}",
            assignee=f"Agent n°{i}",
            model=models[columns.fold_key(model_name)],
            fleet=fleets[f"Unité {i % 40:02d}"],
        )
    naive_seconds = time.perf_counter() - started
    naive_rate = args.sample / naive_seconds
    figures["naive_per_row_baseline"] = {
        "rows": args.sample,
        "seconds": round(naive_seconds, 2),
        "rows_per_second": round(naive_rate),
        "projected_seconds_for_all_rows": round(args.rows / naive_rate, 1),
    }
    figures["speedup_first_import_vs_naive"] = round((args.rows / first) / naive_rate, 1)
    figures["target_seconds"] = 60
    figures["meets_target"] = first < 60
    figures["machine"] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    print(
        f"    baseline: {naive_seconds:7.2f} s for {args.sample} rows, {naive_rate:9,.0f} rows/s "
        f"(projected {args.rows / naive_rate:,.0f} s for {args.rows:,} rows); "
        f"set-based first import is {figures['speedup_first_import_vs_naive']}x faster"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
