"""FleetPatch at ten million devices: generate, measure, and derive a capacity model (PostgreSQL + Redis).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fp_scale CELERY_BROKER_URL=redis://127.0.0.1:6379/11 \\
        python bench/scale.py [--devices 10000000] [--check-ins 100000000]

1. Generate ``--devices`` devices (bench/fleet_data.py: 10 organisations, 50 models of 24 monthly builds) and
   ``--check-ins`` check-ins spread over the last months (one INSERT ... SELECT over generate_series, ``raw``
   left NULL), with the check-in table's constraints and indexes dropped during the load and rebuilt after
   it, the way a bulk load is done; then ANALYZE. The check-in table is partitioned by month (devices 0009).
2. Sweep: real Celery workers consuming the ``sweep`` queue on Redis, 1 then 2 worker processes. Each run
   first sends 5 % of the devices silent (a different 5 % each time, so each sweep has the same work), then
   times a fanned-out ``updates.sweep_compliance`` from enqueue to its SweepRun row finishing.
3. Bulk ingest over HTTP with 1 then 2 gunicorn processes (bench/ingest.py's server and client helpers):
   batches of 1,000 reports, a few concurrent clients, for ``--ingest-seconds`` each.
4. Reads, one client at a time: the device list API (first page, and a deep page through a cursor at 90 %
   of the organisation's ids) and a device timeline (``devices.selectors.device_timeline``), p50/p99.
5. Storage (``pg_total_relation_size``, summed over the check-in partitions), machine facts, a capacity
   model derived from the figures; all written to bench/results/scale.json and printed.

The database is the benchmark's own (it empties the fleet tables). ``--skip-generate`` reuses a loaded one.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only")

from bench.ingest import BATCH, CpuMeter, Http, percentile, run_concurrently, start_server  # noqa: E402

MONTHS_OF_HISTORY = 12


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def machine() -> dict:
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
    return {
        "cores": os.cpu_count(),
        "ram_gb": round(int(meminfo["MemTotal"].split()[0]) / 1024 / 1024, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# --- 1. Generation -------------------------------------------------------------------------------------


def drop_keys_and_indexes(cursor, table: str, *, kinds: tuple[str, ...]) -> tuple[list, list]:
    """Drops ``table``'s constraints of ``kinds`` (p, u, f) and its plain indexes, for a bulk load: building
    an index once over sorted rows is many times cheaper than updating it row by row. Returns what
    :func:`rebuild_keys_and_indexes` needs to put them back."""
    cursor.execute(
        """SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint
            WHERE conrelid = %s::regclass AND contype = ANY(%s)""",
        [table, list(kinds)],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        """SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE i.indrelid = %s::regclass
              AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = c.oid AND conrelid = %s::regclass)""",
        [table, table],
    )
    indexes = cursor.fetchall()
    for name, _kind, _definition in constraints:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _definition in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    return constraints, indexes


def rebuild_keys_and_indexes(cursor, table: str, dropped: tuple[list, list]) -> None:
    constraints, indexes = dropped
    cursor.execute("SET maintenance_work_mem = '1GB'")
    for name, kind, definition in sorted(constraints, key=lambda c: c[1] == "f"):  # keys before foreign keys
        cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        log(f"  {table}: constraint {name} ({kind}) rebuilt")
    for name, definition in indexes:
        # A partitioned table's index reads "ON ONLY": rebuilt on the parent, it must cover the partitions.
        cursor.execute(definition.replace(" ON ONLY ", " ON "))
        log(f"  {table}: index {name} rebuilt")


def load_check_ins(cursor, *, total: int, devices: int, now: dt.datetime) -> dict:
    """``total`` check-ins over every device (``total / devices`` each), evenly spaced over the last
    ``MONTHS_OF_HISTORY`` months, each older report on an older build of the device's model, so the history
    has build transitions. Constraints and indexes go before the load and come back after it."""
    from devices.models import CheckIn, Device
    from updates.models import OSBuild

    table = CheckIn._meta.db_table
    per_device = max(1, total // devices)
    spacing_hours = MONTHS_OF_HISTORY * 30 * 24 // per_device
    dropped = drop_keys_and_indexes(cursor, table, kinds=("p", "u", "f"))
    started = time.monotonic()
    # k = 0 is the newest report (the device's current state); every 3 reports back, one build older.
    cursor.execute(
        f"""
        INSERT INTO {table} (device_id, reported_at, received_at, source, build_number, build_id, android_version,
                             security_patch_level, battery_level_pct, battery_health_pct, agent_version)
        SELECT d.id, d.last_check_in_at - k * INTERVAL '{spacing_hours} hours',
               d.last_check_in_at - k * INTERVAL '{spacing_hours} hours', 'api',
               b.build_number, b.id, b.android_version, b.security_patch_level,
               20 + (d.id + k) %% 80, d.battery_health_pct, ''
          FROM {Device._meta.db_table} d
         CROSS JOIN generate_series(0, %(n)s - 1) AS k
          JOIN {OSBuild._meta.db_table} b
            ON b.model_id = d.model_id
           AND b.build_number = 'R' || d.model_id || '.' ||
               lpad(GREATEST(1, split_part(d.reported_build_number, '.', 2)::int - k / 3)::text, 2, '0')
        """,
        {"n": per_device},
    )
    rows = cursor.rowcount
    loaded = time.monotonic() - started
    log(f"{rows:,} check-ins inserted in {loaded:.0f} s; rebuilding constraints and indexes")
    started = time.monotonic()
    rebuild_keys_and_indexes(cursor, table, dropped)
    indexed = time.monotonic() - started
    cursor.execute(f"ANALYZE {table}")
    return {
        "check_ins": rows,
        "check_ins_per_device": per_device,
        "check_in_spacing_hours": spacing_hours,
        "check_ins_insert_seconds": round(loaded, 1),
        "check_ins_index_seconds": round(indexed, 1),
        "check_ins_rows_per_second": round(rows / loaded),
    }


def generate(devices: int, check_ins: int, now: dt.datetime) -> dict:
    from django.db import connection

    from bench.fleet_data import generate as generate_fleet
    from devices import partitions

    figures: dict = {}
    started = time.monotonic()
    with connection.cursor() as cursor:
        # The primary key stays: the other tables' foreign keys need it.
        dropped = drop_keys_and_indexes(cursor, "devices_device", kinds=("u", "f"))
    figures.update(generate_fleet(devices=devices, now=now))
    with connection.cursor() as cursor:
        rebuild_keys_and_indexes(cursor, "devices_device", dropped)
    figures["devices_seconds"] = round(time.monotonic() - started, 1)
    log(f"{figures['devices']:,} devices in {figures['devices_seconds']} s")
    with connection.cursor() as cursor:
        partitions.ensure_partitions(
            first=partitions.add_months(partitions.month_start(now), -MONTHS_OF_HISTORY - 1),
            last=partitions.add_months(partitions.month_start(now), partitions.MONTHS_AHEAD),
        )
        figures.update(load_check_ins(cursor, total=check_ins, devices=devices, now=now))
        cursor.execute("VACUUM (ANALYZE) devices_device")
    return figures


# --- 2. Sweep with real Celery workers ------------------------------------------------------------------


def start_worker(processes: int, env: dict, logfile: Path) -> subprocess.Popen:
    worker = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "celery"), "-A", "config", "worker", "--queues", "sweep",
         "--concurrency", str(processes), "--pool", "prefork", "--hostname", f"scale{processes}@%h",
         "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=logfile.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    time.sleep(8)  # the pool's children import Django and connect
    if worker.poll() is not None:
        sys.exit(f"the Celery worker exited with {worker.returncode}: see {logfile}")
    return worker


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def timed_sweep(timeout: float) -> dict:
    """Enqueues one fanned-out sweep and waits for its SweepRun to finish; seconds from enqueue to finish."""
    from devices.compliance.tasks import sweep_compliance
    from devices.models import SweepRun

    started_at = time.monotonic()
    result = sweep_compliance.apply_async()
    deadline = started_at + timeout
    while time.monotonic() < deadline:
        run = SweepRun.objects.filter(task_id=result.id).first()
        if run is not None and run.finished_at is not None:
            return {
                "seconds": round(time.monotonic() - started_at, 2),
                "status": run.status,
                "ranges": run.ranges_planned,
                "devices_updated": run.devices_updated,
                "transitions": run.transitions,
            }
        time.sleep(0.2)
    sys.exit(f"the sweep did not finish within {timeout:.0f} s")


def measure_sweeps(devices: int, repeat: int, now: dt.datetime) -> dict:
    """The first sweep (settling every device), then ``repeat`` timed sweeps with 1 and with 2 worker
    processes, in the order 1, 2, 2, 1, ... so neither always runs on the warmer cache; medians kept."""
    from django.db import connection

    from devices.models import Device

    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    table = Device._meta.db_table
    figures: dict = {}
    order = [2] + [processes for pair in range(repeat) for processes in ((1, 2) if pair % 2 == 0 else (2, 1))]
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for slot, processes in enumerate(order):
        worker = start_worker(processes, env, ROOT / "var" / f"scale-worker-{processes}.log")
        try:
            if slot == 0:
                # The first sweep settles every device from 'unknown': timed, but not the steady state.
                figures["first_sweep_settling_every_device"] = {"processes": processes, **timed_sweep(7200)}
                settled = figures["first_sweep_settling_every_device"]["seconds"]
                log(f"first sweep (settles every device) with {processes} processes: {settled} s")
                continue
            with connection.cursor() as cursor:
                # A different 5 % each time goes silent, so each measured sweep changes as many devices.
                cursor.execute(
                    f"UPDATE {table} SET last_check_in_at = %s WHERE id %% 20 = %s AND compliance_status <> 'silent'",
                    [now - dt.timedelta(days=40), slot % 20],
                )
                changing = cursor.rowcount
                cursor.execute(f"VACUUM (ANALYZE) {table}")
            run = timed_sweep(7200)
            run["devices_made_silent"] = changing
            runs[processes].append(run)
            log(f"sweep with {processes} worker process(es): {run['seconds']} s ({changing:,} devices made silent)")
        finally:
            stop(worker)
    for processes, measured in runs.items():
        if measured:
            seconds = statistics.median(run["seconds"] for run in measured)
            figures[f"{processes}_worker_processes"] = {
                "seconds": round(seconds, 2),
                "seconds_per_million_devices": round(seconds / (devices / 1e6), 2),
                "runs": measured,
            }
    if all(f"{n}_worker_processes" in figures for n in (1, 2)):
        figures["speedup_2_over_1"] = round(
            figures["1_worker_processes"]["seconds"] / figures["2_worker_processes"]["seconds"], 2
        )
    return figures


# --- 3. Bulk ingest over HTTP ---------------------------------------------------------------------------


def measure_ingest(port: int, processes_list: list[int], clients: int, seconds: float, now: dt.datetime) -> dict:
    from django.db import connection

    from bench.fleet_data import BUILDS_PER_MODEL
    from fleet.models import Organisation
    from fleet.services import api_client_create
    from updates.models import OSBuild

    tokens = {
        organisation.pk: api_client_create(
            organisation=organisation, name=f"scale ingest {now:%Y%m%d%H%M%S}", scopes=["read", "report"]
        )[1]
        for organisation in Organisation.objects.order_by("pk")
    }
    newest = {
        model_id: (number, patch)
        for model_id, number, patch in OSBuild.objects.filter(
            build_number__endswith=f".{BUILDS_PER_MODEL:02d}"
        ).values_list("model_id", "build_number", "security_patch_level")
    }
    with connection.cursor() as cursor:
        # About 300 batches per phase, devices taken across the whole id range (a stride), not the first ones.
        cursor.execute("SELECT count(*) FROM devices_device")
        stride = max(1, cursor.fetchone()[0] // 300_000)
        cursor.execute(
            """SELECT organisation_id, serial, model_id FROM devices_device
                WHERE id %% %s = 0 ORDER BY organisation_id, id""",
            [stride],
        )
        sample = cursor.fetchall()
    connection.close()
    figures: dict = {"clients": clients, "batch_size": BATCH, "seconds_per_phase": seconds}
    for phase, processes in enumerate(processes_list):
        at = (now - dt.timedelta(minutes=30 - phase)).isoformat()
        batches = []
        by_org: dict[int, list] = {}
        for organisation_id, serial, model_id in sample:
            by_org.setdefault(organisation_id, []).append((serial, model_id))
        for organisation_id, rows in by_org.items():
            for start in range(0, len(rows), BATCH):
                reports = [
                    {
                        "serial": serial,
                        "reported_at": at,
                        "build_number": newest[model_id][0],
                        "android_version": "14",
                        "security_patch_level": newest[model_id][1].isoformat(),
                        "battery_level": 20 + i % 80,
                        "battery_health": 70 + i % 30,
                        "agent_version": "scale-1",
                    }
                    for i, (serial, model_id) in enumerate(rows[start : start + BATCH])
                ]
                batches.append((organisation_id, json.dumps(reports).encode()))
        random.Random(phase).shuffle(batches)

        def post(job: tuple) -> tuple[int, int, float]:
            organisation_id, body = job
            status, payload, elapsed = Http(port, tokens[organisation_id]).send("POST", "/api/v1/checkins/", body)
            return status, json.loads(payload)["created"] if status == 200 else 0, elapsed

        server = start_server(port, processes)
        try:
            post(batches[0])  # warm-up
            meter = CpuMeter(os.environ["DATABASE_URL"], server.pid)
            cpu_start = meter.snapshot()
            outcomes, wall = run_concurrently(batches[1:], post, clients=clients, seconds=seconds)
            cpu = meter.since(cpu_start)
            meter.close()
        finally:
            stop(server)
        statuses = {status for status, _, _ in outcomes}
        created = sum(c for _, c, _ in outcomes)
        latencies = [e for _, _, e in outcomes]
        figures[f"{processes}_gunicorn_processes"] = {
            "requests": len(outcomes),
            "statuses": sorted(statuses),
            "check_ins_created": created,
            "seconds": round(wall, 1),
            "check_ins_per_second": round(created / wall),
            "request_p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
            "request_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
            # CPU per report on each side: what a shared, loaded machine distorts least.
            "cpu_seconds": {"gunicorn": cpu["server"], "postgres": cpu["postgres"]},
            "gunicorn_cpu_ms_per_1000": round(cpu["server"] / max(created, 1) * 1e6, 1),
            "postgres_cpu_ms_per_1000": round(cpu["postgres"] / max(created, 1) * 1e6, 1),
        }
        log(f"ingest with {processes} gunicorn process(es): {created / wall:,.0f} check-ins/s, statuses {statuses}")
    if all(f"{n}_gunicorn_processes" in figures for n in (1, 2)):
        figures["speedup_2_over_1"] = round(
            figures["2_gunicorn_processes"]["check_ins_per_second"]
            / max(1, figures["1_gunicorn_processes"]["check_ins_per_second"]),
            2,
        )
    return figures


# --- 4. Reads -------------------------------------------------------------------------------------------


def latency(samples: list[float]) -> dict:
    return {
        "requests": len(samples),
        "p50_ms": round(percentile(samples, 0.5) * 1000, 2),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 2),
    }


def measure_reads(port: int, requests: int) -> dict:
    from django.db import connection

    from devices.models import Device
    from devices.selectors import device_timeline
    from fleet.models import Organisation
    from fleet.services import api_client_create

    organisation = Organisation.objects.order_by("pk").first()
    token = api_client_create(organisation=organisation, name=f"scale reads {time.time_ns()}", scopes=["read"])[1]
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT percentile_disc(0.9) WITHIN GROUP (ORDER BY id), count(*) FROM devices_device
                WHERE organisation_id = %s""",
            [organisation.pk],
        )
        deep_id, organisation_devices = cursor.fetchone()
    # DRF's cursor: base64 of its query string; "p" is the position on the ordering (id) to continue after.
    deep_cursor = base64.b64encode(urlencode({"p": str(deep_id)}).encode()).decode()
    connection.close()
    figures: dict = {"organisation_devices": organisation_devices}
    server = start_server(port, 2)
    try:
        client = Http(port, token)
        for name, path in (
            ("device_list_first_page", "/api/v1/devices/"),
            ("device_list_deep_cursor_page", f"/api/v1/devices/?cursor={deep_cursor}"),
        ):
            samples = []
            for _ in range(requests):
                status, payload, elapsed = client.send("GET", path, b"")
                assert status == 200, (status, payload[:300])
                samples.append(elapsed)
            figures[name] = latency(samples)
            log(f"{name}: p50 {figures[name]['p50_ms']} ms, p99 {figures[name]['p99_ms']} ms")
    finally:
        stop(server)
    rng = random.Random(7)
    hi = Device.objects.order_by("-id").values_list("id", flat=True).first()
    samples = []
    for _ in range(requests):
        device = Device.objects.filter(id__gte=rng.randint(1, hi)).order_by("id").first()
        started = time.perf_counter()
        page = device_timeline(device=device)
        samples.append(time.perf_counter() - started)
        assert page.events
    figures["device_timeline_selector"] = latency(samples)
    log(f"device timeline: p50 {figures['device_timeline_selector']['p50_ms']} ms")
    return figures


# --- 5. Storage and the capacity model ------------------------------------------------------------------


def storage() -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size('devices_device'), (SELECT count(*) FROM devices_device)")
        device_bytes, devices = cursor.fetchone()
        cursor.execute(
            """SELECT COALESCE(sum(pg_total_relation_size(relid)), 0), count(*) FILTER (WHERE isleaf)
                 FROM pg_partition_tree('devices_checkin')"""
        )
        check_in_bytes, partition_count = cursor.fetchone()
        cursor.execute("SELECT sum(reltuples)::bigint FROM pg_class c JOIN pg_partition_tree('devices_checkin') t "
                       "ON t.relid = c.oid WHERE t.isleaf")  # fmt: skip
        check_ins = int(cursor.fetchone()[0] or 0)
    return {
        "devices_bytes": device_bytes,
        "check_ins_bytes": int(check_in_bytes),
        "check_in_partitions": partition_count,
        "check_ins_estimated": check_ins,
        "mb_per_million_devices": round(device_bytes / max(devices, 1) * 1e6 / 2**20),
        "mb_per_million_check_ins": round(int(check_in_bytes) / max(check_ins, 1) * 1e6 / 2**20),
    }


def capacity_model(figures: dict) -> dict:
    """Per-unit capacities from the measured figures (the README's "Capacity model" explains them)."""
    sweep = figures.get("sweep", {})
    ingest = figures.get("ingest", {})
    store = figures["storage"]
    per_million = sweep.get("1_worker_processes", {}).get("seconds_per_million_devices")
    web = ingest.get("1_gunicorn_processes", {})
    model: dict = {
        "measured_on": f"{figures['machine']['cores']} cores shared by PostgreSQL, workers, web and load generator",
        "sweep_seconds_per_million_devices_per_worker": per_million,
        "check_ins_per_second_per_web_process": web.get("check_ins_per_second"),
        "web_cpu_ms_per_1000_check_ins": web.get("gunicorn_cpu_ms_per_1000"),
        "mb_per_million_check_ins": store["mb_per_million_check_ins"],
        "mb_per_million_devices": store["mb_per_million_devices"],
    }
    if per_million:
        # A sweep every 15 minutes may use half of a core (the rest for ingest and reads): the sweep's time
        # is almost all PostgreSQL's (one UPDATE per range; the worker process waits on it).
        model["devices_per_postgresql_core"] = round(0.5 * 900 / per_million * 1e6)
    two = ingest.get("2_gunicorn_processes", {})
    if two.get("check_ins_per_second") and two.get("cpu_seconds"):
        # With 2 web processes the 2 cores are saturated: what gunicorn did not use went to PostgreSQL (and a
        # little to the HTTP client), an upper bound on PostgreSQL's share. The per-backend CPU meter misses
        # the backends that come and go with each request, so it is not used here.
        web_cores = two["cpu_seconds"]["gunicorn"] / two["seconds"]
        database_cores = figures["machine"]["cores"] - web_cores
        model["check_ins_per_second_per_postgresql_core_at_least"] = round(two["check_ins_per_second"] / database_cores)
    model["storage_gb_10m_devices_1_report_a_day_400_days"] = round(
        10_000_000 * 400 * store["mb_per_million_check_ins"] / 1e6 / 1024
    )
    return model


def print_table(figures: dict) -> None:
    model = figures["capacity_model"]
    rows = [
        ("devices per PostgreSQL core (swept every 15 min, half a core)", "devices_per_postgresql_core"),
        ("check-ins per second per web process (bulk)", "check_ins_per_second_per_web_process"),
        (
            "check-ins per second per PostgreSQL core (bulk, at least)",
            "check_ins_per_second_per_postgresql_core_at_least",
        ),
        ("sweep seconds per million devices per worker", "sweep_seconds_per_million_devices_per_worker"),
        ("MB per million check-ins (table + indexes)", "mb_per_million_check_ins"),
        ("MB per million devices (table + indexes)", "mb_per_million_devices"),
        ("GB of check-ins, 10M devices, 1 a day, 400 days", "storage_gb_10m_devices_1_report_a_day_400_days"),
    ]
    width = max(len(label) for label, _ in rows)
    print("\ncapacity model")
    for label, key in rows:
        value = model.get(key)
        shown = f"{value:,}" if isinstance(value, int | float) else str(value)
        print(f"  {label:<{width}}  {shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10_000_000)
    parser.add_argument("--check-ins", type=int, default=100_000_000)
    parser.add_argument("--skip-generate", action="store_true", help="measure the database as it is")
    parser.add_argument("--ingest-seconds", type=float, default=60)
    parser.add_argument("--sweep-repeat", type=int, default=2, help="timed sweeps per worker count")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--read-requests", type=int, default=200)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "scale.json"))
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    if connection.vendor != "postgresql":
        sys.exit("bench/scale.py needs DATABASE_URL=postgres://... (a database of its own, which it empties)")
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        sys.exit("bench/scale.py needs CELERY_BROKER_URL=redis://... (real workers consume the sweep queue)")
    call_command("migrate", verbosity=0)
    now = timezone.now()
    figures: dict = {
        "date": now.isoformat(),
        "machine": machine(),
        "requested": {"devices": args.devices, "check_ins": args.check_ins},
        "database": "postgresql, check-ins partitioned by month",
    }
    (ROOT / "var").mkdir(exist_ok=True)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        # After every phase: a run stopped half-way still leaves what it measured.
        out.write_text(json.dumps(figures, indent=2, default=str) + "\n")

    if not args.skip_generate:
        started = time.monotonic()
        figures["generation"] = generate(args.devices, args.check_ins, now)
        figures["generation"]["total_seconds"] = round(time.monotonic() - started, 1)
    figures["storage"] = storage()
    log(f"storage: {figures['storage']}")
    save()
    figures["sweep"] = measure_sweeps(args.devices, args.sweep_repeat, now)
    save()
    figures["ingest"] = measure_ingest(args.port, [1, 2], args.clients, args.ingest_seconds, now)
    save()
    figures["reads"] = measure_reads(args.port, args.read_requests)
    figures["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    figures["capacity_model"] = capacity_model(figures)
    print_table(figures)
    save()
    print(f"written to {out}")


if __name__ == "__main__":
    main()
