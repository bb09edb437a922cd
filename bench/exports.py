"""Benchmark of the device exports (CSV and XLSX) on PostgreSQL: time, rows per second, and Python memory that
must not grow with the number of rows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fp_exports_bench python bench/exports.py \
        [--devices 100000]

1. Generate one organisation of ``--devices`` devices (bench/fleet_data.py).
2. For a tenth of them and for all of them, export through the admin's export views (login, changelist
   filters, scoping, the real response) as CSV and as XLSX, reading the whole response like a browser.
   Time it, and count its queries.
3. Again under ``tracemalloc``, for the peak Python memory of the export; and the same for a baseline that
   loads the rows in a list first (``list(values_list(...))``) and writes them after, as a naive export would.
4. Print the figures, and the ratios "all / a tenth" for each: ~1 for memory that stays flat, ~10 for memory
   that follows the rows. Writes bench/results/exports.json.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")


def _ensure_database(url: str) -> None:
    """Creates the benchmark's own database when it does not exist yet."""
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument(
        "--xlsx-devices",
        type=int,
        default=20_000,
        help="XLSX runs export a tenth and all of the first N devices: openpyxl without lxml writes ~10x slower",
    )
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("bench/exports.py needs DATABASE_URL=postgres://... (a database it may fill)")
    _ensure_database(url)

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from bench.fleet_data import generate
    from devices import exports
    from devices.models import Device
    from fleet.models import Organisation

    call_command("migrate", verbosity=0)
    if Device.objects.count() != args.devices or Organisation.objects.count() != 1:
        print(f"generating {args.devices:,} devices…", flush=True)
        generate(devices=args.devices, organisations=1)
    organisation = Organisation.objects.get()
    user, _ = get_user_model().objects.get_or_create(
        username="bench-exports", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    ids = list(Device.objects.filter(organisation=organisation).order_by("pk").values_list("pk", flat=True))
    sizes = {"tenth": ids[len(ids) // 10 - 1], "all": ids[-1]}
    xlsx_ids = ids[: args.xlsx_devices]
    xlsx_sizes = {"tenth": xlsx_ids[len(xlsx_ids) // 10 - 1], "all": xlsx_ids[-1]}

    def export(file_format: str, last_id: int) -> tuple[int, int]:
        name = "admin:devices_device_export" + ("_xlsx" if file_format == "xlsx" else "")
        response = client.get(reverse(name), {"id__lte": last_id}, secure=True)
        assert response.status_code == 200, response.status_code
        size = 0
        for chunk in response.streaming_content:
            size += len(chunk)
        response.close()
        return size, 0

    def naive(file_format: str, last_id: int) -> tuple[int, int]:
        """The baseline: every row in a list, then written."""
        queryset = Device.objects.filter(id__lte=last_id).order_by("pk")
        rows = list(queryset.values_list(*(column.path for column in exports.DEVICES.columns)))
        if file_format == "csv":
            buffer = io.StringIO()
            csv.writer(buffer).writerows(rows)
            return len(buffer.getvalue()), len(rows)
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)  # the same writer: only the list of rows differs
        sheet = workbook.create_sheet()
        for row in rows:
            sheet.append([value.replace(tzinfo=None) if hasattr(value, "tzinfo") else value for value in row])
        buffer = io.BytesIO()
        workbook.save(buffer)
        return len(buffer.getvalue()), len(rows)

    figures: dict = {"devices": args.devices, "database": connection.vendor, "runs": {}}
    for file_format in ("csv", "xlsx"):
        for size_name, last_id in (sizes if file_format == "csv" else xlsx_sizes).items():
            rows = Device.objects.filter(id__lte=last_id).count()
            queries: list[str] = []

            def count(execute, sql, params, many, context, queries=queries):
                queries.append(sql)
                return execute(sql, params, many, context)

            with connection.execute_wrapper(count):
                started = time.perf_counter()
                size, _ = export(file_format, last_id)
                seconds = time.perf_counter() - started
            tracemalloc.start()
            export(file_format, last_id)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            tracemalloc.start()
            started = time.perf_counter()
            naive(file_format, last_id)
            naive_seconds = time.perf_counter() - started
            naive_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            run = {
                "rows": rows,
                "seconds": round(seconds, 2),
                "rows_per_second": round(rows / seconds),
                "bytes": size,
                "queries": len(queries),
                "peak_python_mib": round(peak / 2**20, 1),
                "naive_peak_python_mib": round(naive_peak / 2**20, 1),
                "naive_seconds_under_tracemalloc": round(naive_seconds, 2),
            }
            figures["runs"][f"{file_format}-{size_name}"] = run
            print(f"{file_format} {size_name}: {json.dumps(run)}", flush=True)
        tenth, whole = figures["runs"][f"{file_format}-tenth"], figures["runs"][f"{file_format}-all"]
        figures[f"{file_format}_memory_ratio_all_over_tenth"] = round(
            whole["peak_python_mib"] / max(tenth["peak_python_mib"], 0.1), 2
        )
        figures[f"{file_format}_naive_memory_ratio_all_over_tenth"] = round(
            whole["naive_peak_python_mib"] / max(tenth["naive_peak_python_mib"], 0.1), 2
        )
        figures[f"{file_format}_queries_tenth_vs_all"] = [tenth["queries"], whole["queries"]]

    print(json.dumps(figures, indent=2))
    results = ROOT / "bench" / "results" / "exports.json"
    results.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written to {results.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
