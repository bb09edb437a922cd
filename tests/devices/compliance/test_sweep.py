"""The fanned-out sweep: id ranges recomputed one transaction each, with a SweepRun recording the whole."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
import time_machine
from celery.signals import task_prerun
from django.contrib import admin
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from devices.compliance import engine as compliance
from devices.compliance import sweeps, tallies
from devices.compliance.tasks import sweep_compliance
from devices.models import ComplianceSnapshot, Device, DeviceTally, StatusChange, SweepRange, SweepRun, Waiver
from tests.factories import (
    CompliancePolicyFactory,
    DeviceModelFactory,
    FleetFactory,
    OrganisationFactory,
    OSBuildFactory,
)

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
TODAY = NOW.date()
METRICS_TOKEN = "sweep-metrics-token-0123456789"


def days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


def varied_fleet(devices: int = 90) -> list[Device]:
    """Two organisations whose devices land in every status: builds of every age, pins of none, a
    fleet policy, waivers, silent and never-seen devices, an unsupported model, a retired device."""
    org_a, org_b = OrganisationFactory(), OrganisationFactory()
    strict = FleetFactory(organisation=org_a)
    CompliancePolicyFactory(organisation=org_a, fleet=strict, grace_days=3, max_silence_days=5)
    CompliancePolicyFactory(organisation=org_b, grace_days=20)
    supported = DeviceModelFactory(security_support_until=dt.date(2030, 1, 31))
    ended = DeviceModelFactory(security_support_until=dt.date(2026, 1, 31))
    builds = [
        OSBuildFactory(model=supported, released_at=days_ago(age), security_patch_level=TODAY - dt.timedelta(age + 5))
        for age in (200, 120, 40, 10, 2)
    ]
    old_build = OSBuildFactory(model=ended, released_at=days_ago(300), security_patch_level=TODAY - dt.timedelta(300))
    rows = []
    for i in range(devices):
        organisation = org_a if i % 3 else org_b
        on_ended = i % 11 == 0
        build = old_build if on_ended else builds[i % len(builds)]
        rows.append(
            Device(
                organisation=organisation,
                fleet=strict if organisation == org_a and i % 4 == 0 else None,
                serial=f"VARIED-{i:04d}",
                model=ended if on_ended else supported,
                current_build=None if i % 17 == 5 else build,
                security_patch_level=build.security_patch_level,
                last_check_in_at=None if i % 13 == 7 else days_ago(i % 40),
                channel="beta" if i % 9 == 0 else "stable",
                battery_health_pct=(55 + i * 7 % 45) if i % 5 else None,
                battery_installed_on=(TODAY - dt.timedelta(days=i * 23 % 900)) if i % 6 else None,
                retired_at=days_ago(3) if i == 42 else None,
            )
        )
    fleet = Device.objects.bulk_create(rows)
    Waiver.objects.create(organisation=org_a, device=fleet[1], reason="Trial", expires_at=NOW + dt.timedelta(days=9))
    Waiver.objects.create(organisation=org_a, fleet=strict, reason="Exercise", expires_at=NOW + dt.timedelta(days=2))
    return fleet


def fleet_state() -> tuple[list, list, list, list]:
    """Everything a sweep writes, in a comparable form: devices' compliance, transitions, snapshot, tallies."""
    devices = list(
        Device.objects.order_by("id").values_list(
            "id",
            "compliance_status",
            "status_since",
            "behind_since",
            "latest_build_id",
            "builds_behind",
            "battery_status",
            "is_waived",
        )
    )
    changes = sorted(
        StatusChange.objects.values_list("device_id", "organisation_id", "from_status", "to_status", "changed_at")
    )
    snapshot = sorted(ComplianceSnapshot.objects.values_list("organisation_id", "day", "status", "count"))
    tallies = sorted(
        DeviceTally.objects.values_list(
            "organisation_id", "model_id", "compliance_status", "battery_status", "patch_bucket", "count"
        )
    )
    return devices, changes, snapshot, tallies


@pytest.fixture
def executed_tasks():
    """The (task name, args) of every task run in this test, in order: Celery's own signal, no mock."""
    seen: list[tuple[str, tuple]] = []

    def record(sender=None, args=None, **kwargs) -> None:
        seen.append((sender.name, tuple(args or ())))

    task_prerun.connect(record, weak=False)
    yield seen
    task_prerun.disconnect(record)


# --- same result as the single statement ---------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("range_size", [1, 7, 1_000_000], ids=["one-device-ranges", "several", "one-range"])
def test_the_fanned_out_sweep_gives_exactly_the_same_statuses_and_status_changes_as_the_single_sweep(
    settings, range_size
):
    fleet = varied_fleet()
    with transaction.atomic():
        compliance.recompute(reason="sweep")
        tallies.snapshot_statuses()
        tallies.tally_devices()
        single = fleet_state()
        transaction.set_rollback(True)
    assert fleet_state()[1] == []  # back to the untouched fleet

    settings.SWEEP_RANGE_SIZE = range_size
    summary = sweep_compliance.apply().get()

    fanned = fleet_state()
    assert fanned == single
    assert len({row[1] for row in fanned[0]}) >= 6, "the fixture should cover most statuses"
    assert summary["status"] == "succeeded"
    expected_ranges = -(-(fleet[-1].pk - fleet[0].pk + 1) // range_size)
    assert summary["ranges"] == expected_ranges
    assert StatusChange.objects.exclude(reason="sweep").count() == 0


@pytest.mark.django_db
def test_a_second_fanned_out_sweep_finds_nothing_left_to_change(settings):
    varied_fleet(30)
    settings.SWEEP_RANGE_SIZE = 4
    first = sweep_compliance.apply().get()
    changes = StatusChange.objects.count()

    second = sweep_compliance.apply().get()

    assert first["updated"] > 0 and second["updated"] == 0
    assert StatusChange.objects.count() == changes
    assert SweepRun.objects.filter(status="succeeded").count() == 2


# --- the run's record ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_sweep_run_records_its_ranges_devices_updated_and_transitions(settings, executed_tasks):
    fleet = varied_fleet(40)
    settings.SWEEP_RANGE_SIZE = 10
    with transaction.atomic():
        single = compliance.recompute()
        transaction.set_rollback(True)

    sweep_compliance.apply()

    run = SweepRun.objects.get()
    assert run.status == "succeeded"
    assert run.ranges_planned == run.ranges_done == 4 == run.ranges.filter(status="done").count()
    assert (run.ranges_failed, run.range_retries) == (0, 0)
    assert [(r.lo, r.hi) for r in run.ranges.all()] == [
        (fleet[0].pk + start, min(fleet[0].pk + start + 9, fleet[-1].pk)) for start in range(0, 40, 10)
    ]
    assert run.devices_updated == single.updated > 0
    assert run.transitions == dict(Counter(StatusChange.objects.values_list("to_status", flat=True)))
    assert run.started_at <= run.finished_at
    assert sum(run.ranges.values_list("devices_updated", flat=True)) == run.devices_updated
    assert DeviceTally.objects.exists() and ComplianceSnapshot.objects.filter(day=TODAY).exists()
    ranges_run = [args for name, args in executed_tasks if name == "updates.sweep_range"]
    assert sorted(ranges_run) == sorted((run.pk, r.lo, r.hi) for r in run.ranges.all())


@pytest.mark.django_db
def test_an_empty_fleet_still_records_a_finished_sweep():
    summary = sweep_compliance.apply().get()

    run = SweepRun.objects.get()
    assert (summary["status"], run.ranges_planned, run.devices_updated) == ("succeeded", 0, 0)
    assert run.finished_at is not None


def test_ranges_cover_every_id_once_and_hold_at_most_the_range_size():
    ranges = sweeps.plan_ranges(lo=5, hi=27, range_size=10)

    assert ranges == [(5, 14), (15, 24), (25, 27)]
    assert sweeps.plan_ranges(lo=None, hi=None, range_size=10) == []
    assert sweeps.plan_ranges(lo=3, hi=3, range_size=100_000) == [(3, 3)]


@pytest.mark.django_db
def test_a_recompute_over_an_id_range_touches_only_the_devices_in_it():
    fleet = varied_fleet(20)
    lo, hi = fleet[5].pk, fleet[9].pk

    compliance.recompute(id_range=(lo, hi))

    changed = set(StatusChange.objects.values_list("device_id", flat=True))
    assert changed and changed <= set(range(lo, hi + 1))


# --- redelivery (acks_late) ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_redelivered_sweep_resumes_its_run_instead_of_starting_another(settings):
    varied_fleet(20)
    settings.SWEEP_RANGE_SIZE = 5
    sweep_compliance.apply(task_id="beat-delivery-1")
    changes = StatusChange.objects.count()

    again = sweep_compliance.apply(task_id="beat-delivery-1").get()

    assert SweepRun.objects.count() == 1
    assert again["status"] == "succeeded"
    assert StatusChange.objects.count() == changes


@pytest.mark.django_db
def test_a_range_delivered_twice_is_recomputed_and_counted_once(settings):
    varied_fleet(20)
    run = sweeps.sweep_start(task_id=None, range_size=100)
    (lo, hi) = sweeps.pending_ranges(run)[0]

    first = sweeps.sweep_range_run(run_id=run.pk, lo=lo, hi=hi)
    second = sweeps.sweep_range_run(run_id=run.pk, lo=lo, hi=hi)

    assert first is not None and first.updated > 0
    assert second is None
    run.refresh_from_db()
    assert (run.ranges_done, run.devices_updated) == (1, first.updated)
    assert sweeps.sweep_finish(run_id=run.pk) is not None
    assert sweeps.sweep_finish(run_id=run.pk) is None  # claimed once


# --- a failing range -----------------------------------------------------------------------------


def _fail_updates_of(lo: int, hi: int, *, until_attempts: int) -> None:
    """A real database error: a trigger refuses to update the devices in lo..hi while the range's recorded
    failed attempts are below ``until_attempts`` (the sweep records each failure in its own transaction)."""
    devices, ranges = Device._meta.db_table, SweepRange._meta.db_table
    attempts = f"(SELECT attempts FROM {ranges} WHERE lo = {lo} ORDER BY id DESC LIMIT 1)"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"""CREATE FUNCTION sweep_test_fail() RETURNS trigger AS $$
                    BEGIN
                      IF {attempts} < {until_attempts} THEN RAISE EXCEPTION 'injected failure of range {lo}'; END IF;
                      RETURN NEW;
                    END $$ LANGUAGE plpgsql"""
            )
            cursor.execute(
                f"""CREATE TRIGGER sweep_test_fail BEFORE UPDATE ON {devices} FOR EACH ROW
                    WHEN (NEW.id BETWEEN {lo} AND {hi}) EXECUTE FUNCTION sweep_test_fail()"""
            )
        else:
            cursor.execute(
                f"""CREATE TRIGGER sweep_test_fail BEFORE UPDATE ON {devices}
                    WHEN NEW.id BETWEEN {lo} AND {hi} AND {attempts} < {until_attempts}
                    BEGIN SELECT RAISE(ABORT, 'injected failure of range {lo}'); END"""
            )


@pytest.mark.django_db
def test_a_range_that_fails_once_is_retried_alone_and_the_run_completes(settings, executed_tasks):
    fleet = varied_fleet(30)
    settings.SWEEP_RANGE_SIZE = 10
    failing_lo, failing_hi = fleet[10].pk, fleet[19].pk
    _fail_updates_of(failing_lo, failing_hi, until_attempts=1)

    sweep_compliance.apply()

    run = SweepRun.objects.get()
    ranges_run = Counter(args[1] for name, args in executed_tasks if name == "updates.sweep_range")
    assert ranges_run == {fleet[0].pk: 1, failing_lo: 2, fleet[20].pk: 1}
    assert (run.status, run.ranges_done, run.ranges_failed, run.range_retries) == ("succeeded", 3, 0, 1)
    failed = run.ranges.get(lo=failing_lo)
    assert failed.attempts == 1 and "injected failure" in failed.last_error
    assert failed.devices_updated > 0
    # Every device of the failed range was recomputed by the retry, once.
    in_range = Device.objects.filter(pk__range=(failing_lo, failing_hi), last_check_in_at__isnull=False)
    assert not in_range.filter(compliance_status="unknown", current_build__isnull=False).exists()
    per_device = Counter(StatusChange.objects.values_list("device_id", flat=True))
    assert per_device and max(per_device.values()) == 1


@pytest.mark.django_db
def test_a_range_failing_every_retry_is_given_up_and_the_run_marked_failed_with_the_others_done(
    settings, executed_tasks
):
    fleet = varied_fleet(30)
    settings.SWEEP_RANGE_SIZE = 10
    failing_lo = fleet[20].pk
    _fail_updates_of(failing_lo, fleet[-1].pk, until_attempts=1_000)

    sweep_compliance.apply()

    run = SweepRun.objects.get()
    max_retries = sweep_compliance.app.tasks["updates.sweep_range"].max_retries
    assert (run.status, run.ranges_done, run.ranges_failed, run.range_retries) == ("failed", 2, 1, max_retries)
    assert run.ranges.get(lo=failing_lo).status == "failed"
    ranges_run = Counter(args[1] for name, args in executed_tasks if name == "updates.sweep_range")
    assert ranges_run == {fleet[0].pk: 1, fleet[10].pk: 1, failing_lo: max_retries + 1}
    assert not StatusChange.objects.filter(device_id__gte=failing_lo).exists()
    assert StatusChange.objects.filter(device_id__lt=failing_lo).exists()
    assert DeviceTally.objects.exists()  # the others' results still reach the dashboard


# --- metrics and admin ---------------------------------------------------------------------------


def _scrape(client: Client) -> dict[str, float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
        if not sample.labels
    }


@pytest.mark.django_db
def test_metrics_expose_the_last_finished_sweeps_duration_time_and_devices_updated(client, settings):
    settings.METRICS_TOKEN = METRICS_TOKEN
    varied_fleet(20)
    older = SweepRun.objects.create(
        started_at=days_ago(1), finished_at=days_ago(1) + dt.timedelta(seconds=3), range_size=1, status="succeeded"
    )
    running = SweepRun.objects.create(started_at=NOW - dt.timedelta(seconds=5), range_size=1)
    finished = SweepRun.objects.create(
        started_at=NOW - dt.timedelta(minutes=10),
        finished_at=NOW - dt.timedelta(minutes=10) + dt.timedelta(seconds=42.5),
        range_size=1,
        status="succeeded",
        devices_updated=1234,
    )
    assert older and running

    metrics = _scrape(client)

    assert metrics["fleetpatch_sweep_duration_seconds"] == 42.5
    assert metrics["fleetpatch_last_sweep_timestamp_seconds"] == finished.finished_at.timestamp()
    assert metrics["fleetpatch_last_sweep_devices_updated"] == 1234
    assert metrics["fleetpatch_last_sweep_failed_ranges"] == 0


@pytest.mark.django_db
def test_metrics_after_a_real_sweep_read_its_run(client, settings):
    settings.METRICS_TOKEN = METRICS_TOKEN
    varied_fleet(20)
    with time_machine.travel(NOW, tick=True):
        sweep_compliance.apply()
    run = SweepRun.objects.get()

    metrics = _scrape(client)

    assert metrics["fleetpatch_sweep_duration_seconds"] == run.duration.total_seconds() > 0
    assert metrics["fleetpatch_last_sweep_devices_updated"] == run.devices_updated > 0


@pytest.mark.django_db
def test_sweep_runs_are_shown_to_superusers_only_and_read_only(client, superuser, manager_a, settings):
    varied_fleet(10)
    settings.SWEEP_RANGE_SIZE = 4
    sweep_compliance.apply()
    run = SweepRun.objects.get()
    client.force_login(superuser)
    changelist = reverse("admin:devices_sweeprun_changelist")
    assert client.get(changelist).status_code == 200
    page = client.get(reverse("admin:devices_sweeprun_change", args=[run.pk]))
    assert page.status_code == 200
    assert str(run.ranges.first().lo) in page.content.decode()
    assert not admin.site._registry[SweepRun].has_change_permission(page.wsgi_request, run)
    assert client.get(reverse("admin:devices_sweeprun_add")).status_code == 403

    client.force_login(manager_a)
    assert client.get(changelist).status_code == 403
    assert client.get(reverse("admin:devices_sweeprange_changelist")).status_code == 403
    assert b"sweeprun" not in client.get(reverse("admin:index")).content
