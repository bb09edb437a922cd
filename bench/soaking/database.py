"""What the soak does to its own database and Redis databases (step 1, and the counts after the run).

The database and the two Redis databases are the soak's alone: it empties them. Django runs in this process
with the stack's environment, so the seed and the counts go through the application's own models.
"""

from __future__ import annotations

import argparse
import secrets
import threading
import urllib.parse
from typing import Any

from bench.soaking.load import Organisation


def reset_stores(args: argparse.Namespace) -> None:
    """Drops and recreates the database, empties the broker's and the cache's Redis databases."""
    import psycopg
    import redis
    from psycopg import sql

    parts = urllib.parse.urlsplit(args.database_url)
    name = parts.path.lstrip("/")
    admin_url = urllib.parse.urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    for url in (args.broker_url, args.cache_url):
        redis.Redis.from_url(url).flushdb()


def prepare(args: argparse.Namespace) -> tuple[list[Organisation], dict[int, tuple[str, str, str]], dict[str, str]]:
    """Step 1 of the package's docstring, in this process (Django set up with the stack's environment)."""
    import datetime as dt

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from alerts.models import AlertSubscription
    from devices.models import Device
    from fleet.models import Membership, Role
    from fleet.models import Organisation as OrganisationModel
    from fleet.services import api_client_create
    from updates.models import OSBuild

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    call_command("seed_demo", devices=args.devices, organisations=args.organisations, verbosity=0)

    passwords: dict[str, str] = {}
    organisations: list[Organisation] = []
    now = timezone.now()
    for organisation in OrganisationModel.objects.order_by("pk"):
        _client, token = api_client_create(organisation=organisation, name="soak", scopes=["read", "report"])
        org = Organisation(pk=organisation.pk, token=token)
        manager = (
            get_user_model()
            .objects.filter(memberships__organisation=organisation, memberships__role=Role.MANAGER)
            .order_by("pk")
            .first()
        )
        if manager is not None:
            password = secrets.token_urlsafe(18)
            manager.set_password(password)
            manager.save(update_fields=["password"])
            passwords[manager.get_username()] = password
        org.manager = manager.get_username() if manager else ""
        # A digest every minute, sent even when nothing is new: the digest path runs all along the soak.
        subscription = AlertSubscription(
            organisation=organisation,
            name="Soak: every minute",
            frequency="cron",
            cron="* * * * *",
            time_zone="UTC",
            send_when_empty=True,
            extra_recipients="soak@example.org",
            created_at=now - dt.timedelta(days=2),
        )
        subscription.full_clean()
        subscription.save()
        org.devices = [
            (pk, serial, model_id, build or "", android or "", patch.isoformat() if patch else "")
            for pk, serial, model_id, build, android, patch in Device.objects.filter(organisation=organisation)
            .order_by("?")
            .values_list(
                "pk", "serial", "model_id", "reported_build_number", "android_version", "security_patch_level"
            )[:5000]
        ]
        if org.devices:
            organisations.append(org)
    newest: dict[int, tuple[str, str, str]] = {}
    for model_id, number, android, patch in (
        OSBuild.objects.filter(organisation__isnull=True, channel="stable", is_revoked=False)
        .order_by("model_id", "-released_at")
        .values_list("model_id", "build_number", "android_version", "security_patch_level")
    ):
        newest.setdefault(model_id, (number, android, patch.isoformat()))
    assert Membership.objects.exists(), "seed_demo created no manager"

    # Beat's own schedule, rescheduled in its tables as an operator would in the admin's Periodic tasks.
    sweep_every, _ = IntervalSchedule.objects.get_or_create(every=args.sweep_every, period="seconds")
    digest_every, _ = IntervalSchedule.objects.get_or_create(every=args.digest_every, period="seconds")
    rescheduled = PeriodicTask.objects.filter(task="updates.sweep_compliance").update(
        interval=sweep_every, crontab=None
    ) + PeriodicTask.objects.filter(task="fleet.dispatch_digests").update(interval=digest_every, crontab=None)
    assert rescheduled == 2, "the sweep's or the digest dispatcher's periodic task is missing"
    PeriodicTask.objects.all().update(last_run_at=None)
    from django_celery_beat.models import PeriodicTasks

    PeriodicTasks.update_changed()
    # seed_demo writes with COPY and leaves the planner without statistics; autovacuum would ANALYZE within a
    # minute in production, before any real load. Done now so the first sweeps do not run on guesses.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    connection.close()
    return organisations, newest, passwords


def outcome_counts(started_at: Any) -> dict[str, int]:
    """What the stack did since it started (priming and load), read from the database."""
    from django.db import connection

    from alerts.choices import DeliveryStatus
    from alerts.models import DigestDelivery
    from devices.models import CheckIn, StatusChange

    counts = {
        "check_ins_stored": CheckIn.objects.filter(received_at__gte=started_at).count(),
        "status_changes": StatusChange.objects.filter(changed_at__gte=started_at).count(),
        "digests_sent": DigestDelivery.objects.filter(status=DeliveryStatus.SENT, created_at__gte=started_at).count(),
        # Failed or retrying: the SMTP sink accepts everything, so these are faults. Rows still claimed or being
        # sent are the last dispatch's, caught by the stop: reported, not counted as errors.
        "digests_failed": DigestDelivery.objects.filter(
            created_at__gte=started_at, status__in=[DeliveryStatus.FAILED, DeliveryStatus.RETRYING]
        ).count(),
        "digests_in_flight_at_stop": DigestDelivery.objects.filter(
            created_at__gte=started_at, status__in=[DeliveryStatus.CLAIMED, DeliveryStatus.SENDING]
        ).count(),
    }
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        counts["postgresql"] = cursor.fetchone()[0]
    connection.close()
    return counts


def autovacuum_enabled(url: str) -> bool:
    import psycopg

    with psycopg.connect(_libpq_url(url), autocommit=True) as connection:
        return connection.execute("SHOW autovacuum").fetchone()[0] == "on"


def _libpq_url(url: str) -> str:
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(scheme="postgresql"))


class VacuumStandIn(threading.Thread):
    """``VACUUM (ANALYZE)`` of the soak's database every ``every`` seconds, for servers with autovacuum off.

    A development server may run without autovacuum; production's never does (it is PostgreSQL's default, and
    the postgres image's). Without it, the devices table the check-ins update fills with dead rows and the
    planner keeps its empty-table guesses: a sweep of 20,000 devices went from 0.3 s to 31 s in ten minutes.
    That is the server's configuration, not the application's behaviour, so the soak reproduces production.
    """

    def __init__(self, url: str, every: float) -> None:
        super().__init__(daemon=True)
        self.url = _libpq_url(url)
        self.every = every
        self.runs = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        import psycopg

        while not self.stopping.wait(self.every):
            with psycopg.connect(self.url, autocommit=True) as connection:
                connection.execute("VACUUM (ANALYZE)")
            self.runs += 1
