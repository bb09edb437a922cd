"""Benchmark of the email digest dispatch on PostgreSQL: 1,000 organisations, 1,000,000 devices, a real SMTP sink.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fleetpatch_bench_digests python bench/digests.py \
        [--devices 1000000] [--organisations 1000] [--workers 2]

1. Generate the fleet (bench/fleet_data.py), then move 30 % of all devices into the first organisation, so
   one organisation is ~300 times the size of the others: the query count per digest must not follow.
2. Settle statuses two days back, make ~10 % of the devices (in every organisation) go silent, and evaluate
   again one hour ago: the StatusChange rows of the digests' window.
3. One daily subscription per organisation, due now, to one extra address.
4. Time the whole dispatch: ``digests_dispatch`` (one INSERT for every period) then every
   ``digest_delivery_send`` (claim, build, render, SMTP to an aiosmtpd sink on loopback), run by
   ``--workers`` threads as that many Celery workers would. Count the queries of each digest.
5. Print the figures and write them to bench/results/digests.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only")


class _Sink:
    """aiosmtpd handler: counts messages and bytes, keeps nothing."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        with self._lock:
            self.messages += 1
            self.bytes += len(envelope.content)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ensure_database(url: str) -> None:
    """Creates the benchmark's own database when it does not exist yet."""
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--organisations", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=2, help="threads sending digests, like Celery workers")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("bench/digests.py needs DATABASE_URL=postgres://... (a database it may fill)")
    _ensure_database(url)

    import logging

    import django

    django.setup()
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command
    from aiosmtpd.controller import Controller
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, connections
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from alerts.choices import DeliveryStatus
    from alerts.models import AlertSubscription, DigestDelivery
    from alerts.services import digest_delivery_send, digests_dispatch
    from bench.fleet_data import generate
    from devices.compliance.engine import recompute
    from devices.models import Device, StatusChange
    from fleet.models import Organisation

    call_command("migrate", verbosity=0)
    now = timezone.now().replace(second=0, microsecond=0)
    figures: dict = {
        "devices": args.devices,
        "organisations": args.organisations,
        "workers": args.workers,
        "database": "postgresql",
        "date": now.isoformat(),
    }

    # 1. The fleet, one organisation much larger than the rest.
    figures.update(generate(devices=args.devices, organisations=args.organisations, now=now))
    big = Organisation.objects.order_by("pk").first()
    table = Device._meta.db_table
    with connection.cursor() as cursor:
        # By blocks of a thousand ids, so every organisation keeps ~70 % of its devices.
        cursor.execute(f"UPDATE {table} SET organisation_id = %s WHERE (id / 1000) %% 10 < 3", [big.pk])
        cursor.execute(f"VACUUM ANALYZE {table}")

    # 2. Statuses two days back; then ~10 % gone silent, in every organisation; evaluated again an hour ago.
    started = time.monotonic()
    recompute(now=now - dt.timedelta(days=2), reason="bench settle")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_check_in_at = %s WHERE (id / 1000) %% 20 IN (2, 7)",
            [now - dt.timedelta(days=40)],
        )
    recompute(now=now - dt.timedelta(hours=1), reason="bench sweep")
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute(f"ANALYZE {StatusChange._meta.db_table}")
    figures["prepare_statuses_seconds"] = round(time.monotonic() - started, 2)
    window = StatusChange.objects.filter(changed_at__gt=now - dt.timedelta(days=1))
    figures["status_changes_in_window"] = window.count()
    figures["status_changes_in_window_biggest_organisation"] = window.filter(organisation=big).count()
    figures["devices_biggest_organisation"] = Device.objects.filter(organisation=big).count()
    print(
        f"{args.devices:,} devices over {args.organisations:,} organisations (the biggest: "
        f"{figures['devices_biggest_organisation']:,}); {figures['status_changes_in_window']:,} status changes "
        f"in the window; prepared in {figures['prepare_statuses_seconds']} s"
    )

    # 3. A subscription per organisation, due now.
    AlertSubscription.objects.all().delete()
    AlertSubscription.objects.bulk_create(
        AlertSubscription(
            organisation=organisation,
            name="Daily",
            time_zone="UTC",
            send_at=(now - dt.timedelta(minutes=30)).time(),
            extra_recipients=f"ops@{organisation.slug}.example",
            created_at=now - dt.timedelta(days=3),
        )
        for organisation in Organisation.objects.all()
    )

    # 4. The dispatch, sending to a real SMTP server on loopback.
    sink = _Sink()
    port = _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    per_digest: dict[int, tuple[int, float]] = {}
    lock = threading.Lock()

    def send(delivery_id: int) -> None:
        try:
            with CaptureQueriesContext(connections["default"]) as queries:
                begun = time.monotonic()
                digest_delivery_send(delivery_id=delivery_id, now=now)
                elapsed = time.monotonic() - begun
            with lock:
                per_digest[delivery_id] = (len(queries.captured_queries), elapsed)
        finally:
            connections.close_all()

    try:
        started = time.monotonic()
        created = digests_dispatch(now=now, enqueue=False).created
        dispatched = time.monotonic() - started
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            list(pool.map(send, created))
        total = time.monotonic() - started
    finally:
        controller.stop()

    big_delivery = DigestDelivery.objects.get(subscription__organisation=big).pk
    counts = sorted(count for count, _ in per_digest.values())
    durations = sorted(seconds for _, seconds in per_digest.values())
    figures.update(
        {
            "dispatch_insert_seconds": round(dispatched, 3),
            "total_dispatch_seconds": round(total, 2),
            "digests": len(created),
            "sent": DigestDelivery.objects.filter(status=DeliveryStatus.SENT).count(),
            "skipped_empty": DigestDelivery.objects.filter(status=DeliveryStatus.SKIPPED_EMPTY).count(),
            "messages_received_by_smtp_sink": sink.messages,
            "megabytes_sent": round(sink.bytes / 1e6, 1),
            "queries_per_digest": {"min": counts[0], "max": counts[-1], "distinct": sorted(set(counts))},
            "queries_biggest_organisation_digest": per_digest[big_delivery][0],
            "seconds_per_digest": {
                "median": round(statistics.median(durations), 4),
                "p95": round(durations[int(len(durations) * 0.95) - 1], 4),
                "max": round(durations[-1], 4),
                "biggest_organisation": round(per_digest[big_delivery][1], 4),
            },
            "target_seconds": 120,
        }
    )
    figures["within_target"] = figures["total_dispatch_seconds"] < figures["target_seconds"]
    print(json.dumps(figures, indent=2))
    results = ROOT / "bench" / "results" / "digests.json"
    results.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written to {results.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
