"""Faults survived, by really stopping the service: Redis down, PostgreSQL restarted under load, a worker killed.

The machine's shared PostgreSQL and Redis are never touched: each test stops a private server of its own
(tests/integration/processes.py). PostgreSQL pass only: the fixtures skip on SQLite with the reason.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import threading
from collections import Counter

import psycopg
import pytest
from django.db import connection, transaction
from django.db.models import Count
from django.test import Client
from django.utils import timezone

from bench.fleet_data import generate
from devices.compliance import engine as compliance
from devices.models import Device, StatusChange
from fleet.services import api_client_create
from tests.factories import DeviceFactory, DeviceModelFactory, OrganisationFactory, OSBuildFactory, UserFactory
from tests.integration.processes import gunicorn, request, send_task, start_celery_worker, stop_process, wait_until

pytestmark = pytest.mark.integration


def _fleet_of_one_model(devices: int) -> tuple:
    """An organisation, a model with a build released 60 days ago, and devices up to date on it."""
    now = timezone.now()
    organisation = OrganisationFactory()
    model = DeviceModelFactory()
    build = OSBuildFactory(
        model=model,
        build_number="FAULT.1",
        released_at=now - dt.timedelta(days=60),
        security_patch_level=(now - dt.timedelta(days=30)).date(),
    )
    fleet = [
        DeviceFactory(
            organisation=organisation,
            model=model,
            current_build=build,
            reported_build_number=build.build_number,
            security_patch_level=build.security_patch_level,
            last_check_in_at=now - dt.timedelta(hours=1),
        )
        for _ in range(devices)
    ]
    compliance.recompute()
    return organisation, model, build, fleet


# --- Redis down -----------------------------------------------------------------------------------
def test_with_redis_down_check_ins_are_accepted_and_the_next_sweep_applies_the_catalogue_change(
    real_services, private_redis, tmp_path
):
    now = timezone.now()
    organisation, model, build, fleet = _fleet_of_one_model(3)
    _, token = api_client_create(organisation=organisation, name="MDM", scopes=["read", "report", "enrol", "catalogue"])
    headers = {"Authorization": f"Bearer {token}"}
    # As docker-compose.yml runs it: Redis is the broker and the cache (the API's throttle counts there).
    env = {**real_services, "CELERY_BROKER_URL": private_redis.url(0), "CACHE_URL": private_redis.url(1)}

    with gunicorn(env, workers=2, log_path=tmp_path / "gunicorn.log") as port:
        assert request(port, "GET", "/api/v1/devices/", headers=headers)[0] == 200
        private_redis.stop()

        report = {
            "serial": fleet[0].serial,
            "reported_at": now.isoformat(),
            "build_number": build.build_number,
            "security_patch_level": (now - dt.timedelta(days=120)).date().isoformat(),
        }
        code, body, _ = request(port, "POST", "/api/v1/checkins/", report, headers=headers)
        assert code == 201, body
        assert json.loads(body)["compliance_status"] == "critical"  # computed inline, in the request

        recent = {**report, "security_patch_level": build.security_patch_level.isoformat()}
        batch = [
            {**recent, "serial": fleet[1].serial},
            {**recent, "serial": "NEW-WHILE-REDIS-DOWN", "model": model.slug},  # enrolled by the batch
        ]
        code, body, _ = request(port, "POST", "/api/v1/checkins/", batch, headers=headers)
        assert code == 200, body
        assert [(r["status"], r["compliance_status"]) for r in json.loads(body)["results"]] == [
            ("created", "up_to_date"),
            ("created", "up_to_date"),
        ]

        # A catalogue change commits, although the recompute of its model cannot be enqueued.
        code, body, _ = request(
            port,
            "POST",
            "/api/v1/builds/",
            {
                "model": model.pk,
                "build_number": "FAULT.2",
                "security_patch_level": (now - dt.timedelta(days=5)).date().isoformat(),
                "released_at": (now - dt.timedelta(days=20)).isoformat(),
            },
            headers=headers,
        )
        assert code == 201, body
        code, body, _ = request(port, "GET", "/readyz")
        assert code == 503 and json.loads(body)["failing"] == ["broker"]

    # Nothing re-evaluated the model: its devices still say up_to_date...
    statuses = dict(Device.objects.filter(model=model).values_list("serial", "compliance_status"))
    assert statuses[fleet[2].serial] == "up_to_date"
    # ...until Redis is back and the next sweep, through a real worker, applies the new build.
    private_redis.start()
    worker = start_celery_worker(env, log_path=tmp_path / "worker.log", name="faults-redis")
    try:
        send_task(env, "updates.sweep_compliance")
        wait_until(
            lambda: not Device.objects.filter(model=model, compliance_status="up_to_date").exists(),
            timeout=60,
            what="the sweep to flag the devices of the model behind on FAULT.2",
        )
    finally:
        stop_process(worker)
    assert set(Device.objects.filter(model=model).values_list("compliance_status", flat=True)) == {
        "behind",
        "critical",
    }
    assert StatusChange.objects.filter(device__model=model, to_status="behind", reason="sweep").count() == 3


# --- PostgreSQL restarted under load --------------------------------------------------------------
DEVICES_PER_BATCH = 40
LOAD_CLIENTS = 4


def test_a_postgresql_restart_under_load_answers_503_writes_nothing_by_halves_and_service_resumes(
    real_services, private_postgres, tmp_path
):
    organisation, _model, build, fleet = _fleet_of_one_model(DEVICES_PER_BATCH)
    _, token = api_client_create(organisation=organisation, name="MDM", scopes=["read", "report"])
    headers = {"Authorization": f"Bearer {token}"}
    browser = Client()
    browser.force_login(UserFactory(username="faults-admin", is_superuser=True))
    session = browser.cookies["sessionid"].value
    # The private cluster gets a copy of the test database: schema, the fleet, the token, the session.
    private_postgres.copy_database(real_services["DATABASE_URL"], "fleetpatch")
    private_url = private_postgres.url("fleetpatch")
    env = {**real_services, "DATABASE_URL": private_url}

    base = timezone.now().replace(microsecond=0) - dt.timedelta(minutes=30)  # newer than the fleet's last reports
    answers: list[tuple[int, int, bytes]] = []  # (batch number, status, body); status 0: no answer
    lock = threading.Lock()
    stop = threading.Event()
    counter = iter(range(1, 1_000_000))

    def batch(number: int) -> list[dict]:
        reported_at = (base + dt.timedelta(seconds=number)).isoformat()
        return [{"serial": d.serial, "reported_at": reported_at, "build_number": build.build_number} for d in fleet]

    def load(port: int) -> None:
        while not stop.is_set():
            with lock:
                number = next(counter)
            try:
                code, body, _ = request(port, "POST", "/api/v1/checkins/", batch(number), headers=headers, timeout=30)
            except OSError as error:  # a hang (timeout) or a dropped connection: the test fails on it
                code, body = 0, repr(error).encode()
            with lock:
                answers.append((number, code, body))

    def count(status: int, since: int = 0) -> int:
        with lock:
            return sum(1 for _, code, _ in answers[since:] if code == status)

    with gunicorn(env, workers=2, log_path=tmp_path / "gunicorn.log") as port:
        threads = [threading.Thread(target=load, args=(port,)) for _ in range(LOAD_CLIENTS)]
        for thread in threads:
            thread.start()
        try:
            wait_until(lambda: count(200) >= 5, timeout=60, what="the load to get going")
            private_postgres.stop("fast")  # terminates every connection, in-flight transactions roll back
            down_since = len(answers)
            wait_until(lambda: count(503, down_since) >= 5, timeout=60, what="503 answers while PostgreSQL is down")

            code, body, response_headers = request(port, "GET", "/api/v1/devices/", headers=headers)
            assert code == 503 and response_headers["retry-after"] == "10"
            assert json.loads(body) == {"detail": "The database is unavailable; nothing was stored. Retry in a moment."}
            code, body, _ = request(port, "GET", "/admin/devices/device/", headers={"Cookie": f"sessionid={session}"})
            assert code == 503
            assert b"FleetPatch is temporarily unavailable" in body and b"The database is unavailable" in body

            private_postgres.start()
            up_since = len(answers)
            # The same gunicorn workers reconnect by themselves: no restart.
            wait_until(lambda: count(200, up_since) >= 5, timeout=60, what="service to resume after the restart")
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)

    by_status = Counter(code for _, code, _ in answers)
    assert set(by_status) <= {200, 503}, [(code, body[:300]) for _, code, body in answers if code not in (200, 503)]
    for _, code, body in answers:
        if code == 503:
            assert "database is unavailable" in json.loads(body)["detail"]

    # Every batch is all or nothing: DEVICES_PER_BATCH check-ins, or none (never a part of one).
    with psycopg.connect(private_url) as db:
        stored = dict(
            db.execute(
                "SELECT c.reported_at, COUNT(*) FROM devices_checkin c JOIN devices_device d ON d.id = c.device_id"
                " WHERE d.organisation_id = %s GROUP BY c.reported_at",
                [organisation.pk],
            ).fetchall()
        )
        stale_devices = db.execute(
            "SELECT COUNT(*) FROM devices_device d WHERE d.organisation_id = %s AND d.last_check_in_at IS DISTINCT"
            " FROM (SELECT MAX(c.reported_at) FROM devices_checkin c WHERE c.device_id = d.id)",
            [organisation.pk],
        ).fetchone()[0]
    assert set(stored.values()) == {DEVICES_PER_BATCH}
    for number, code, _ in answers:
        if code == 200:
            assert stored.get(base + dt.timedelta(seconds=number)) == DEVICES_PER_BATCH, number
    assert stale_devices == 0  # device state and check-ins were written together
    print(f"answers: {dict(by_status)}")


# --- A worker killed mid-sweep --------------------------------------------------------------------
SWEPT_DEVICES = 60_000


def _other_backends(condition: str = "TRUE") -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            f" AND state = 'active' AND {condition}"
        )
        return cursor.fetchone()[0]


def test_a_worker_killed_mid_sweep_leaves_the_next_sweep_to_finish_without_duplicate_transitions(
    real_services, tmp_path
):
    # Every device is "unknown" as stored: the sweep rewrites all of them, which takes seconds.
    generate(devices=SWEPT_DEVICES, models=10, organisations=2)
    worker = start_celery_worker(real_services, log_path=tmp_path / "worker-1.log", name="faults-1")
    try:
        send_task(real_services, "updates.sweep_compliance")
        # Kill it while a statement of the sweep has been running for a moment: mid-sweep, not before it.
        wait_until(
            lambda: _other_backends("now() - query_start > interval '200 milliseconds'") > 0,
            timeout=60,
            what="the sweep to be running",
            interval=0.05,
        )
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=20)
    finally:
        stop_process(worker)
    # PostgreSQL rolls the dead worker's transaction back once it notices the client is gone.
    wait_until(lambda: _other_backends() == 0, timeout=120, what="the killed worker's statement to end")
    assert not StatusChange.objects.values("device_id").annotate(n=Count("id")).filter(n__gt=1).exists()

    worker = start_celery_worker(real_services, log_path=tmp_path / "worker-2.log", name="faults-2")
    try:
        send_task(real_services, "updates.sweep_compliance")
        wait_until(
            lambda: not Device.objects.filter(compliance_status="unknown").exists(),
            timeout=120,
            what="the next sweep to evaluate every device",
            interval=0.5,
        )
        wait_until(lambda: _other_backends() == 0, timeout=60, what="the sweep to finish")
    finally:
        stop_process(worker)

    with transaction.atomic():
        assert compliance.recompute().updated == 0, "statuses differ from a fresh recompute"
        transaction.set_rollback(True)
    per_device = StatusChange.objects.values("device_id").annotate(n=Count("id"))
    assert not per_device.filter(n__gt=1).exists(), "a transition recorded twice"
    assert per_device.count() == Device.objects.count() == SWEPT_DEVICES
