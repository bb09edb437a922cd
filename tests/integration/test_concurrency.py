"""Concurrency on real PostgreSQL: bulk check-ins racing through real gunicorn workers, sweeps racing each other.

PostgreSQL pass only (the fixtures skip on SQLite with the reason): SQLite serialises writers, so none of
these races can happen there.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from functools import partial

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.utils import timezone

from devices.checkins.ingest import Submission, checkins_ingest
from devices.checkins.parsers import DeviceIdentity, Report
from devices.checkins.services import checkins_ingest_retrying, is_retryable_conflict
from devices.compliance import engine as compliance
from devices.models import CheckIn, Device, StatusChange
from fleet.services import api_client_create
from tests.factories import DeviceFactory, DeviceModelFactory, OrganisationFactory, OSBuildFactory
from tests.integration.processes import gunicorn, request, wait_until

pytestmark = pytest.mark.integration

CLIENTS = 20
DEVICES = 120
REPORTS_PER_DEVICE = 6
COPIES = 3  # every report is sent by this many different clients, in different batches
BATCH = 40


def _deadlocks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def _in_threads(jobs: list[Callable[[], object]]) -> list[object]:
    """Runs the jobs in threads released together by a barrier; returns their results (or exceptions)."""
    barrier = threading.Barrier(len(jobs))
    results: list[object] = [None] * len(jobs)

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=60)
            results[index] = jobs[index]()
        except Exception as error:  # noqa: BLE001 - reported by the test's assertions
            results[index] = error
        finally:
            connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results


def _recompute_retrying(**scope: object) -> compliance.RecomputeResult:
    """What the Celery tasks do (autoretry on database errors), without the backoff: run again after a deadlock."""
    for _attempt in range(10):
        try:
            return compliance.recompute(**scope)
        except OperationalError as error:
            if not is_retryable_conflict(error):
                raise
    raise AssertionError("still deadlocking after 10 attempts")


def test_twenty_clients_sending_overlapping_bulk_check_ins_lose_nothing_and_duplicate_nothing(real_services, tmp_path):
    now = timezone.now().replace(microsecond=0)
    organisation = OrganisationFactory()
    model = DeviceModelFactory()
    builds = [
        OSBuildFactory(
            model=model,
            build_number=f"RACE.{i}",
            released_at=now - dt.timedelta(days=80 - 20 * i),
            security_patch_level=(now - dt.timedelta(days=85 - 20 * i)).date(),
        )
        for i in range(4)
    ]
    _, token = api_client_create(organisation=organisation, name="MDM", scopes=["report", "enrol", "read"])
    # Half the devices exist; the other half are enrolled by whichever racing batch names them first.
    for d in range(0, DEVICES, 2):
        DeviceFactory(organisation=organisation, model=model, serial=f"RACE{d:05d}", imei=None)

    reports = []
    for d in range(DEVICES):
        for r in range(REPORTS_PER_DEVICE):
            build = builds[(d + r) % len(builds)]  # the newest report is not always the newest build
            reports.append(
                {
                    "serial": f"RACE{d:05d}",
                    "model": model.slug,
                    "reported_at": (now - dt.timedelta(hours=REPORTS_PER_DEVICE - r, seconds=d)).isoformat(),
                    "build_number": build.build_number,
                    "security_patch_level": build.security_patch_level.isoformat(),
                    "battery_health": 50 + (d * 7 + r * 13) % 50,
                    "battery_cycle_count": 100 + r,
                }
            )
    rng = random.Random(7)
    per_client: list[list[dict]] = [[] for _ in range(CLIENTS)]
    for report in reports:
        for client in rng.sample(range(CLIENTS), COPIES):
            per_client[client].append(report)
    batches_of: list[list[list[dict]]] = []
    for items in per_client:
        rng.shuffle(items)
        batches_of.append([items[i : i + BATCH] for i in range(0, len(items), BATCH)])

    deadlocks_before = _deadlocks()
    stop_sweeping = threading.Event()
    sweeps: list[int] = []

    def sweeper() -> None:
        # Sweeps lock devices in the order of their plan, check-in batches in id order: the classic deadlock.
        try:
            while not stop_sweeping.is_set():
                _recompute_retrying(reason="sweep")
                sweeps.append(1)
        finally:
            connections.close_all()

    with gunicorn(real_services, workers=3, log_path=tmp_path / "gunicorn.log") as port:
        headers = {"Authorization": f"Bearer {token}"}

        def client(batches: list[list[dict]]) -> Callable[[], list]:
            return lambda: [request(port, "POST", "/api/v1/checkins/", batch, headers=headers) for batch in batches]

        sweeping = threading.Thread(target=sweeper)
        sweeping.start()
        try:
            answers = _in_threads([client(batches) for batches in batches_of])
        finally:
            stop_sweeping.set()
            sweeping.join(timeout=120)

    failures = [a for a in answers if isinstance(a, Exception)]
    assert not failures, failures
    created: Counter = Counter()
    for batches, responses in zip(batches_of, answers, strict=True):
        for batch, (code, body, _headers) in zip(batches, responses, strict=True):
            assert code == 200, (code, body[:500])
            results = json.loads(body)["results"]
            assert [r["status"] for r in results if r["status"] == "error"] == [], results
            for item, result in zip(batch, results, strict=True):
                if result["status"] == "created":
                    created[(item["serial"], item["reported_at"])] += 1

    # Every distinct report stored exactly once, and answered "created" to exactly one client.
    assert CheckIn.objects.filter(device__organisation=organisation).count() == len(reports)
    assert len(created) == len(reports) and set(created.values()) == {1}
    assert Device.objects.filter(organisation=organisation).count() == DEVICES

    # Each device ends on its newest report.
    newest = {}
    for report in reports:
        if report["serial"] not in newest or report["reported_at"] > newest[report["serial"]]["reported_at"]:
            newest[report["serial"]] = report
    for device in Device.objects.filter(organisation=organisation).select_related("current_build"):
        report = newest[device.serial]
        assert device.last_check_in_at == dt.datetime.fromisoformat(report["reported_at"]), device.serial
        assert device.current_build.build_number == report["build_number"], device.serial
        assert device.battery_health_pct == report["battery_health"], device.serial

    # Statuses are what a fresh recompute says, and each device's history is a chain without repeats.
    with transaction.atomic():
        assert compliance.recompute(organisation_id=organisation.pk).updated == 0
        transaction.set_rollback(True)
    for device in Device.objects.filter(organisation=organisation):
        # By id: a transition is inserted while its device row is locked, so ids follow the order they happened in.
        chain = list(StatusChange.objects.filter(device=device).order_by("id"))
        for before, after in zip(chain, chain[1:], strict=False):
            assert before.to_status == after.from_status, [(c.from_status, c.to_status) for c in chain]
        assert (chain[-1].to_status if chain else "unknown") == device.compliance_status
    print(f"sweeps during the load: {len(sweeps)}; deadlocks PostgreSQL resolved: {_deadlocks() - deadlocks_before}")


def test_two_sweeps_and_a_catalogue_recompute_racing_record_each_transition_once(real_services):
    now = timezone.now()
    organisation = OrganisationFactory()
    models = [DeviceModelFactory() for _ in range(3)]
    current = {m.pk: OSBuildFactory(model=m, released_at=now - dt.timedelta(days=60)) for m in models}
    devices = 3000
    Device.objects.bulk_create(
        Device(
            organisation=organisation,
            serial=f"SW{i:06d}",
            model=models[i % 3],
            current_build=current[models[i % 3].pk],
            security_patch_level=(now - dt.timedelta(days=20 if i % 7 else 120)).date(),
            last_check_in_at=now - dt.timedelta(days=1 if i % 11 else 40),
            enrolled_at=now,
            status_since=now,
        )
        for i in range(devices)
    )
    _recompute_retrying()
    for round_number in range(3):
        # Something for every racer to do: a newer build for every model (the catalogue recompute's part)
        # and, for the sweeps, devices falling silent.
        for model in models:
            OSBuildFactory(model=model, released_at=now - dt.timedelta(days=30 - round_number))
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE devices_device SET last_check_in_at = %s WHERE organisation_id = %s AND id %% 17 = %s",
                [now - dt.timedelta(days=45), organisation.pk, round_number],
            )
        with transaction.atomic():
            expected_result = compliance.recompute(now=now)
            expected = dict(Device.objects.values_list("pk", "compliance_status"))
            transaction.set_rollback(True)
        before = dict(Device.objects.values_list("pk", "compliance_status"))
        last_change = StatusChange.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

        results = _in_threads(
            [
                lambda: _recompute_retrying(now=now, reason="sweep"),
                lambda: _recompute_retrying(now=now, reason="sweep"),
                partial(_recompute_retrying, now=now, model_id=models[round_number].pk, reason="catalogue"),
            ]
        )
        assert not [r for r in results if isinstance(r, Exception)], results

        after = dict(Device.objects.values_list("pk", "compliance_status"))
        assert after == expected
        moved = {pk for pk in after if after[pk] != before[pk]}
        assert len(moved) == expected_result.transitions_total > 0
        new_changes = list(StatusChange.objects.filter(pk__gt=last_change))
        recorded = Counter(c.device_id for c in new_changes)
        assert set(recorded) == moved and set(recorded.values()) == {1}, "a transition recorded twice or lost"
        for change in new_changes:
            assert (change.from_status, change.to_status) == (before[change.device_id], after[change.device_id])


def test_a_sweep_that_read_a_device_before_its_check_in_committed_does_not_overwrite_it(real_services):
    """The sweep reads the fleet, then writes: a check-in committing in between must win.

    The device last reported 40 days ago (the sweep would call it silent) and checks in now. The sweep
    reads it before the check-in commits and waits for its row lock; once the check-in commits, the
    sweep's values are stale and must not be written (nor a transition up_to_date -> silent recorded).
    """
    now = timezone.now()
    build = OSBuildFactory(
        released_at=now - dt.timedelta(days=60), security_patch_level=(now - dt.timedelta(days=20)).date()
    )
    device = DeviceFactory(
        model=build.model,
        current_build=build,
        security_patch_level=build.security_patch_level,
        last_check_in_at=now - dt.timedelta(days=40),
        compliance_status="up_to_date",  # the last sweep ran before the 30 days of silence were up
    )
    checked_in = threading.Event()
    commit = threading.Event()

    def check_in() -> None:
        with transaction.atomic():
            checkins_ingest(
                organisation_id=device.organisation_id,
                submissions=[
                    Submission(
                        DeviceIdentity(serial=device.serial),
                        Report(reported_at=now, build_number=build.build_number, source="api"),
                    )
                ],
                can_enrol=False,
                now=now,
            )
            checked_in.set()
            assert commit.wait(timeout=60)

    def sweep_is_waiting_for_the_row() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                # Only the sweep can be waiting for a lock here (the query text is truncated: not searchable).
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return cursor.fetchone()[0] > 0

    results: list[object] = []

    def sweep() -> None:
        assert checked_in.wait(timeout=60)
        results.append(_recompute_retrying(now=now, reason="sweep"))

    threads = [threading.Thread(target=_own_connection(check_in)), threading.Thread(target=_own_connection(sweep))]
    for thread in threads:
        thread.start()
    try:
        wait_until(sweep_is_waiting_for_the_row, timeout=60, what="the sweep to wait for the device's row lock")
    finally:
        commit.set()
        for thread in threads:
            thread.join(timeout=60)

    device.refresh_from_db()
    assert device.last_check_in_at == now
    assert device.compliance_status == "up_to_date"
    assert not StatusChange.objects.filter(device=device, to_status="silent").exists()


def _own_connection(function: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            function()
        finally:
            connections.close_all()

    return run


def test_a_check_in_batch_picked_as_a_deadlock_victim_is_run_again_and_stored_once(real_services):
    """Another transaction holds the second device of a batch and then wants the first: a deadlock, in which
    PostgreSQL aborts the batch. The batch runs again by itself, and its reports are stored once."""
    now = timezone.now()
    build = OSBuildFactory(released_at=now - dt.timedelta(days=10))
    first, second = sorted(
        (DeviceFactory(model=build.model, organisation=OrganisationFactory(slug="deadlock")) for _ in range(2)),
        key=lambda device: device.pk,
    )
    submissions = [
        Submission(DeviceIdentity(serial=device.serial), Report(reported_at=now, build_number=build.build_number))
        for device in (first, second)
    ]
    holding_second, batch_waiting = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def other_transaction() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            # Its own deadlock check comes late, so the batch is the one PostgreSQL aborts.
            cursor.execute("SET LOCAL deadlock_timeout = '20s'")
            cursor.execute("SELECT id FROM devices_device WHERE id = %s FOR UPDATE", [second.pk])
            holding_second.set()
            assert batch_waiting.wait(timeout=60)
            cursor.execute("SELECT id FROM devices_device WHERE id = %s FOR UPDATE", [first.pk])

    def batch() -> None:
        assert holding_second.wait(timeout=60)
        try:
            outcome["results"] = checkins_ingest_retrying(
                organisation_id=first.organisation_id, submissions=submissions, can_enrol=False
            )
        except Exception as error:  # noqa: BLE001 - asserted below
            outcome["error"] = error

    def someone_waits_for_a_lock() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return cursor.fetchone()[0] > 0

    deadlocks_before = _deadlocks()
    threads = [
        threading.Thread(target=_own_connection(other_transaction)),
        threading.Thread(target=_own_connection(batch)),
    ]
    for thread in threads:
        thread.start()
    try:
        wait_until(someone_waits_for_a_lock, timeout=60, what="the batch to wait for the second device")
    finally:
        batch_waiting.set()
        for thread in threads:
            thread.join(timeout=60)

    assert "error" not in outcome, outcome
    assert [result.status for result in outcome["results"]] == ["created", "created"]
    assert _deadlocks() > deadlocks_before
    assert CheckIn.objects.filter(device__in=[first, second]).count() == 2
