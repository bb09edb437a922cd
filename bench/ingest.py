"""Benchmark of check-in ingestion over HTTP, next to the naive baseline and the floor, in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fleetpatch_bench_ingest python bench/ingest.py

1. Generate N enrolled devices (bench/fleet_data.py) over 10 organisations, settle their statuses, and
   create one API client per organisation.
2. Start the app under gunicorn on loopback (``bench.naive_app``: the production URLs plus the baseline).
3. Measure, each bounded in requests and in seconds:
   - bulk: a few concurrent clients POST /api/v1/checkins/ with 1,000 reports per request
     (every device reports its organisation's newest build: a third of them change status);
   - single: one report per request at a steady ~50 requests/s, latency p50/p99;
   - naive: the same concurrent clients PATCH one device per request through a plain DRF ModelViewSet;
   - floor: a raw psycopg ``INSERT ... ON CONFLICT DO NOTHING`` of the same check-in rows, 1,000 per
     transaction, with the same number of concurrent connections.
4. Print the figures and their ratios; write bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only")

BATCH = 1000


class Http:
    """One loopback HTTP request per call (gunicorn's sync workers close the connection after each)."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def send(self, method: str, path: str, body: bytes) -> tuple[int, bytes, float]:
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.request(method, path, body=body, headers=self.headers)
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        return response.status, payload, time.perf_counter() - started


def run_concurrently(jobs: list, worker, *, clients: int, seconds: float) -> tuple[list, float]:
    """Runs ``worker(job)`` over ``jobs`` with ``clients`` threads until done or ``seconds`` elapsed."""
    todo: queue.Queue = queue.Queue()
    for job in jobs:
        todo.put(job)
    results: list = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop() -> None:
        while time.monotonic() < deadline:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            outcome = worker(job)
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class CpuMeter:
    """CPU seconds (user + system) spent by the server's processes during one phase, read from /proc.

    On a machine shared with other work, wall-clock throughput moves with the load; the CPU each row
    costs hardly does. Counted: the gunicorn master and workers, the PostgreSQL backends connected to
    the benchmark's database (PostgreSQL on this host), and, where the phase's client is the work itself
    (the floor's psycopg loop), this process. Not counted: PostgreSQL's shared background processes
    (WAL writer, checkpointer, autovacuum), which serve every database of the cluster.
    """

    def __init__(self, database_url: str, server_pid: int | None) -> None:
        import psycopg

        self.monitor = psycopg.connect(database_url, autocommit=True)
        self.server_pid = server_pid
        self.tick = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _stat(pid: int) -> list[str] | None:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None

    def _cpu(self, pid: int) -> float:
        fields = self._stat(pid)
        return (int(fields[11]) + int(fields[12])) / self.tick if fields else 0.0

    def _server_pids(self) -> set[int]:
        if self.server_pid is None:
            return set()
        pids = {self.server_pid}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                fields = self._stat(int(entry.name))
                if fields and int(fields[1]) == self.server_pid:  # field 4 of stat: the parent's pid
                    pids.add(int(entry.name))
        return pids

    def _backend_pids(self) -> set[int]:
        rows = self.monitor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        return {pid for (pid,) in rows}

    def snapshot(self) -> dict[str, dict[int, float]]:
        return {
            "server": {pid: self._cpu(pid) for pid in self._server_pids()},
            "postgres": {pid: self._cpu(pid) for pid in self._backend_pids()},
            "client": {0: time.process_time()},
        }

    def since(self, start: dict[str, dict[int, float]]) -> dict[str, float]:
        """CPU seconds per kind since ``start``; a process born during the phase counts from zero."""
        end = self.snapshot()
        return {kind: round(sum(cpu - start[kind].get(pid, 0.0) for pid, cpu in end[kind].items()), 3) for kind in end}

    def close(self) -> None:
        self.monitor.close()


def start_server(port: int, workers: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "SECRET_KEY": "benchmark-only",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "DEBUG": "false",
        # The benchmark measures ingestion, not the per-client throttle.
        "API_THROTTLE_RATE": "100000000/minute",
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "bench.naive_app:application",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"gunicorn exited with {server.returncode}")
        try:
            status, _, _ = Http(port, "none").send("GET", "/api/v1/checkins/", b"")
            if status in (401, 403):
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.terminate()
    sys.exit("gunicorn did not answer within 30 s")


def main() -> None:  # noqa: C901 - a benchmark script reads best top to bottom
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients (bulk, naive, floor)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--bulk-seconds", type=float, default=120)
    parser.add_argument("--naive-requests", type=int, default=10_000)
    parser.add_argument("--naive-seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=50, help="single check-ins per second")
    parser.add_argument("--single-seconds", type=float, default=20)
    args = parser.parse_args()

    import django

    django.setup()
    import psycopg
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone
    from psycopg.types.json import Jsonb

    from bench.fleet_data import BUILDS_PER_MODEL, generate
    from devices.compliance.engine import recompute
    from devices.models import CheckIn, Device
    from fleet.models import Organisation
    from fleet.services import api_client_create
    from updates.models import OSBuild

    if connection.vendor != "postgresql":
        sys.exit("bench/ingest.py needs DATABASE_URL=postgres://... (a database of its own, which it empties)")
    call_command("migrate", verbosity=0)
    now = timezone.now()
    figures: dict = {
        "devices": args.devices,
        "database": "postgresql",
        "server": f"gunicorn, {args.workers} sync workers, loopback",
        "clients": args.clients,
        "batch_size": BATCH,
        "date": now.isoformat(),
        # The machine may be shared: a loaded one lowers every figure, the ratios less so.
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    figures.update(generate(devices=args.devices, now=now))
    recompute(now=now, reason="bench settle")

    tokens: dict[int, str] = {}
    for organisation in Organisation.objects.order_by("pk"):
        tokens[organisation.pk] = api_client_create(organisation=organisation, name="bench", scopes=["read", "report"])[
            1
        ]
    newest = {
        model_id: (build_id, number, patch)
        for build_id, model_id, number, patch in OSBuild.objects.filter(
            build_number__endswith=f".{BUILDS_PER_MODEL:02d}"
        ).values_list("pk", "model_id", "build_number", "security_patch_level")
    }
    devices = list(Device.objects.order_by("pk").values_list("pk", "organisation_id", "serial", "model_id"))
    by_org: dict[int, list] = {}
    for row in devices:
        by_org.setdefault(row[1], []).append(row)
    connection.close()  # the server and the floor use their own connections

    def report(serial: str, model_id: int, at: str, index: int) -> dict:
        _, number, patch = newest[model_id]
        return {
            "serial": serial,
            "reported_at": at,
            "build_number": number,
            "android_version": "14",
            "security_patch_level": patch.isoformat(),
            "battery_level": 20 + index % 80,
            "battery_health": 70 + index % 30,
            "battery_cycle_count": 100 + index % 400,
            "agent_version": "bench-1",
        }

    bulk_at = (now - dt.timedelta(minutes=2)).isoformat()
    batches = []
    for organisation_id, rows in by_org.items():
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            body = json.dumps([report(s, m, bulk_at, i) for i, (_, _, s, m) in enumerate(chunk)]).encode()
            batches.append((organisation_id, body, len(chunk)))

    server = start_server(args.port, args.workers)
    try:
        # --- Bulk ----------------------------------------------------------------------------------
        def post_batch(job: tuple) -> tuple[int, int, float]:
            organisation_id, body, _ = job
            status, payload, elapsed = Http(args.port, tokens[organisation_id]).send("POST", "/api/v1/checkins/", body)
            created = json.loads(payload)["created"] if status == 200 else 0
            return status, created, elapsed

        post_batch(batches[0])  # warm both the server and the caches; its devices are then duplicates
        meter = CpuMeter(os.environ["DATABASE_URL"], server.pid)
        cpu_start = meter.snapshot()
        outcomes, wall = run_concurrently(batches[1:], post_batch, clients=args.clients, seconds=args.bulk_seconds)
        bulk_cpu = meter.since(cpu_start)
        created = sum(c for _, c, _ in outcomes)
        assert all(status == 200 for status, _, _ in outcomes), {s for s, _, _ in outcomes}
        latencies = [e for _, _, e in outcomes]
        figures["bulk"] = {
            "requests": len(outcomes),
            "reports_created": created,
            "seconds": round(wall, 2),
            "devices_per_second": round(created / wall),
            "request_p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
            "request_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
            # The HTTP client (this process) is the harness, not the work: shown apart, not in the total.
            "cpu_seconds": {"gunicorn": bulk_cpu["server"], "postgres": bulk_cpu["postgres"]},
            "http_client_cpu_seconds": bulk_cpu["client"],
            "cpu_ms_per_1000_reports": round((bulk_cpu["server"] + bulk_cpu["postgres"]) / max(created, 1) * 1e6, 1),
        }
        print(
            f"bulk: {created:,} reports in {wall:.1f} s = {created / wall:,.0f} devices/s; "
            f"{figures['bulk']['cpu_ms_per_1000_reports']} ms of CPU per 1,000 reports "
            f"(gunicorn {bulk_cpu['server']:.1f} s, postgres {bulk_cpu['postgres']:.1f} s)"
        )

        # --- Single, at a steady rate --------------------------------------------------------------
        single_jobs = []
        count = int(args.rate * args.single_seconds)
        for i in range(count):
            _, organisation_id, serial, model_id = devices[(i * 7919) % len(devices)]
            single_jobs.append((i, organisation_id, serial, model_id))
        single_latencies: list[float] = []
        statuses: list[int] = []
        lock = threading.Lock()
        pending: queue.Queue = queue.Queue()

        def single_worker() -> None:
            while True:
                job = pending.get()
                if job is None:
                    return
                i, organisation_id, serial, model_id = job
                body = json.dumps(report(serial, model_id, timezone.now().isoformat(), i)).encode()
                status, _, elapsed = Http(args.port, tokens[organisation_id]).send("POST", "/api/v1/checkins/", body)
                with lock:
                    single_latencies.append(elapsed)
                    statuses.append(status)

        pool = [threading.Thread(target=single_worker) for _ in range(16)]
        for thread in pool:
            thread.start()
        started = time.monotonic()
        for i, job in enumerate(single_jobs):
            # Open loop: requests leave on schedule whether or not earlier ones have returned.
            delay = started + i / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pending.put(job)
        for _ in pool:
            pending.put(None)
        for thread in pool:
            thread.join(timeout=120)
        single_wall = time.monotonic() - started
        assert all(s == 201 for s in statuses), sorted(set(statuses))
        figures["single"] = {
            "requests": len(single_latencies),
            "target_rate_per_second": args.rate,
            "achieved_rate_per_second": round(len(single_latencies) / single_wall, 1),
            "p50_ms": round(percentile(single_latencies, 0.5) * 1000, 1),
            "p99_ms": round(percentile(single_latencies, 0.99) * 1000, 1),
            "max_ms": round(max(single_latencies) * 1000, 1),
        }
        print(f"single: p50 {figures['single']['p50_ms']} ms, p99 {figures['single']['p99_ms']} ms")

        # --- Single, one after another: the latency without any queueing -------------------------------
        sequential = []
        for i in range(min(200, len(devices))):
            _, organisation_id, serial, model_id = devices[(i * 7919 + 13) % len(devices)]
            body = json.dumps(report(serial, model_id, timezone.now().isoformat(), i)).encode()
            status, _, elapsed = Http(args.port, tokens[organisation_id]).send("POST", "/api/v1/checkins/", body)
            assert status == 201, status
            sequential.append(elapsed)
        figures["single_sequential"] = {
            "requests": len(sequential),
            "p50_ms": round(percentile(sequential, 0.5) * 1000, 1),
            "p99_ms": round(percentile(sequential, 0.99) * 1000, 1),
        }
        seq = figures["single_sequential"]
        print(f"single, sequential: p50 {seq['p50_ms']} ms, p99 {seq['p99_ms']} ms")

        # --- Naive: one PATCH per device -----------------------------------------------------------
        naive_at = (now - dt.timedelta(minutes=1)).isoformat()

        def patch_device(job: tuple) -> tuple[int, float]:
            device_id, organisation_id, _, model_id = job
            _, number, patch = newest[model_id]
            body = json.dumps(
                {
                    "reported_build_number": number,
                    "android_version": "14",
                    "security_patch_level": patch.isoformat(),
                    "last_check_in_at": naive_at,
                    "battery_level_pct": 50,
                }
            ).encode()
            status, _, elapsed = Http(args.port, tokens[organisation_id]).send(
                "PATCH", f"/bench/naive/devices/{device_id}/", body
            )
            return status, elapsed

        naive_jobs = devices[: args.naive_requests]
        naive, naive_wall = run_concurrently(naive_jobs, patch_device, clients=args.clients, seconds=args.naive_seconds)
        assert all(status == 200 for status, _ in naive), {s for s, _ in naive}
        figures["naive"] = {
            "requests": len(naive),
            "seconds": round(naive_wall, 2),
            "requests_per_second": round(len(naive) / naive_wall),
            "p50_ms": round(percentile([e for _, e in naive], 0.5) * 1000, 1),
            "p99_ms": round(percentile([e for _, e in naive], 0.99) * 1000, 1),
        }
        print(f"naive: {len(naive) / naive_wall:,.0f} devices/s (one PATCH per device)")
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()

    # --- Floor: the same check-in rows through raw psycopg -------------------------------------------
    table = CheckIn._meta.db_table
    floor_at = now - dt.timedelta(seconds=90)
    floor_batches = []
    for rows in by_org.values():
        for start in range(0, len(rows), BATCH):
            floor_batches.append(
                [
                    (
                        device_id,
                        floor_at,
                        now,
                        "api",
                        newest[model_id][1],
                        newest[model_id][0],
                        "14",
                        newest[model_id][2],
                        20 + i % 80,
                        70 + i % 30,
                        100 + i % 400,
                        "bench-1",
                        Jsonb(report(serial, model_id, floor_at.isoformat(), i)),
                    )
                    for i, (device_id, _, serial, model_id) in enumerate(rows[start : start + BATCH])
                ]
            )
    floor_batches = floor_batches[: len(outcomes)]  # as many batches as the bulk run stored
    insert = f"""
        INSERT INTO {table} (device_id, reported_at, received_at, source, build_number, build_id, android_version,
                             security_patch_level, battery_level_pct, battery_health_pct, battery_cycle_count,
                             agent_version, raw)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (device_id, reported_at, source) DO NOTHING
    """
    local = threading.local()

    opened: list = []  # kept open until the CPU of their backends has been read

    def floor_batch(rows: list) -> int:
        if not hasattr(local, "db"):
            local.db = psycopg.connect(os.environ["DATABASE_URL"])
            opened.append(local.db)
        with local.db.transaction(), local.db.cursor() as cursor:
            cursor.executemany(insert, rows)
        return len(rows)

    meter = CpuMeter(os.environ["DATABASE_URL"], None)
    cpu_start = meter.snapshot()
    floor, floor_wall = run_concurrently(floor_batches, floor_batch, clients=args.clients, seconds=args.bulk_seconds)
    floor_cpu = meter.since(cpu_start)
    meter.close()
    for db in opened:
        db.close()
    figures["floor"] = {
        "what": "raw psycopg executemany INSERT ... ON CONFLICT DO NOTHING of the check-in rows, 1,000 per transaction",
        "rows": sum(floor),
        "seconds": round(floor_wall, 2),
        "rows_per_second": round(sum(floor) / floor_wall),
        # Here the client is the work: psycopg adapting every row.
        "cpu_seconds": {"psycopg_client": floor_cpu["client"], "postgres": floor_cpu["postgres"]},
        "cpu_ms_per_1000_rows": round((floor_cpu["client"] + floor_cpu["postgres"]) / max(sum(floor), 1) * 1e6, 1),
    }
    print(
        f"floor: {sum(floor) / floor_wall:,.0f} rows/s; {figures['floor']['cpu_ms_per_1000_rows']} ms of CPU per "
        f"1,000 rows (client {floor_cpu['client']:.1f} s, postgres {floor_cpu['postgres']:.1f} s)"
    )

    bulk_rate = figures["bulk"]["devices_per_second"]
    figures["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    figures["ratios"] = {
        "bulk_over_naive": round(bulk_rate / figures["naive"]["requests_per_second"], 1),
        "floor_over_bulk": round(figures["floor"]["rows_per_second"] / bulk_rate, 2),
        # The same comparison in CPU per row: what a loaded, shared machine distorts least.
        "bulk_cpu_over_floor_cpu": round(
            figures["bulk"]["cpu_ms_per_1000_reports"] / max(figures["floor"]["cpu_ms_per_1000_rows"], 0.1), 2
        ),
    }
    figures["targets"] = {
        "bulk_devices_per_second_at_least": 10_000,
        "bulk_over_naive_at_least": 20,
        "floor_over_bulk_at_most": 3,
        "single_p99_ms_under": 50,
        "met": {
            "bulk_rate": bulk_rate >= 10_000,
            "bulk_over_naive": figures["ratios"]["bulk_over_naive"] >= 20,
            "within_3x_of_floor": figures["ratios"]["floor_over_bulk"] <= 3,
            "single_p99": figures["single"]["p99_ms"] < 50,
        },
    }
    print(
        f"bulk is {figures['ratios']['bulk_over_naive']}x the naive path and "
        f"{figures['ratios']['floor_over_bulk']}x below the floor (in CPU per row: "
        f"{figures['ratios']['bulk_cpu_over_floor_cpu']}x); targets met: {figures['targets']['met']}"
    )
    out = ROOT / "bench" / "results" / "ingest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
