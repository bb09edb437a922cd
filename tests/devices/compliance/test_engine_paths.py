"""The three ways compliance is recomputed (check-in, catalogue change, sweep), pins and waivers."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
import time_machine
from django.db import connection, connections, transaction
from django.db.models import Count

from devices.checkins.ingest import Submission, checkins_ingest
from devices.checkins.parsers import DeviceIdentity, Report
from devices.compliance import engine as compliance
from devices.compliance import tallies
from devices.compliance.tasks import sweep_compliance
from devices.models import Device, StatusChange
from devices.services import waiver_grant, waiver_revoke
from tests.factories import DeviceFactory, DeviceModelFactory, FleetFactory, OrganisationFactory, OSBuildFactory
from updates import services

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
TODAY = NOW.date()


def days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


@pytest.fixture(autouse=True)
def frozen_clock():
    """Services and tasks read the clock themselves: freeze it at NOW."""
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def model(db):
    return DeviceModelFactory(security_support_until=dt.date(2030, 1, 31))


@pytest.fixture
def build(model):
    return OSBuildFactory(model=model, released_at=days_ago(60), security_patch_level=TODAY - dt.timedelta(62))


def on(build, **kwargs) -> Device:
    return DeviceFactory(
        model=build.model,
        current_build=build,
        security_patch_level=build.security_patch_level,
        last_check_in_at=days_ago(1),
        **kwargs,
    )


def refreshed(device: Device) -> Device:
    device.refresh_from_db()
    return device


# --- pins ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_pinned_build_is_the_target_instead_of_the_newest(model, build):
    device = on(build)
    validated = OSBuildFactory(model=model, released_at=days_ago(40), security_patch_level=TODAY - dt.timedelta(41))
    OSBuildFactory(model=model, released_at=days_ago(20))  # newest, not yet validated by the organisation
    services.build_pin(organisation=device.organisation, build=validated, now=days_ago(30))
    compliance.recompute(now=NOW)
    device = refreshed(device)
    assert device.latest_build == validated
    assert device.compliance_status == "behind"
    # Grace counts from the pin (30 days ago), not from the build's release (40 days ago).
    assert device.behind_since == (days_ago(30) + dt.timedelta(days=14)).date()


@pytest.mark.django_db
def test_a_device_on_the_pinned_build_or_newer_is_compliant(model, build):
    pinned_device = on(build)
    newer = OSBuildFactory(model=model, released_at=days_ago(20), security_patch_level=TODAY - dt.timedelta(22))
    newer_device = on(newer, organisation=pinned_device.organisation)
    services.build_pin(organisation=pinned_device.organisation, build=build, now=days_ago(50))
    compliance.recompute(now=NOW)
    assert refreshed(pinned_device).compliance_status == "up_to_date"
    assert refreshed(newer_device).compliance_status == "up_to_date"


@pytest.mark.django_db
def test_a_pin_applies_only_to_its_organisation(model, build):
    pinning, other = OrganisationFactory(), OrganisationFactory()
    newer = OSBuildFactory(model=model, released_at=days_ago(20))
    services.build_pin(organisation=pinning, build=build, now=days_ago(50))
    other_device = on(build, organisation=other)
    compliance.recompute(now=NOW)
    assert refreshed(other_device).latest_build == newer


@pytest.mark.django_db
def test_a_revoked_pinned_build_falls_back_to_the_newest(model, build):
    device = on(build)
    pinned = OSBuildFactory(model=model, released_at=days_ago(40))
    services.build_pin(organisation=device.organisation, build=pinned, now=days_ago(40))
    services.build_revoke(build=pinned, now=days_ago(5))
    compliance.recompute(now=NOW)
    assert refreshed(device).latest_build == build
    assert device.compliance_status == "up_to_date"


@pytest.mark.django_db
def test_pinning_another_organisations_private_build_is_refused(model):
    from django.core.exceptions import ValidationError

    private = OSBuildFactory(model=model, organisation=OrganisationFactory())
    with pytest.raises(ValidationError) as excinfo:
        services.build_pin(organisation=OrganisationFactory(), build=private)
    assert "another organisation" in str(excinfo.value)


# --- waivers -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_waived_device_keeps_its_real_status_and_the_waiver_expires_by_itself(model, build):
    OSBuildFactory(model=model, released_at=days_ago(30))
    device = on(build)
    waiver_grant(
        organisation=device.organisation, device=device, reason="field mission", expires_at=NOW, now=days_ago(3)
    )
    compliance.recompute(now=days_ago(1))
    device = refreshed(device)
    assert (device.compliance_status, device.is_waived) == ("behind", True)
    compliance.recompute(now=NOW)  # the sweep at expiry
    assert refreshed(device).is_waived is False


@pytest.mark.django_db
def test_a_fleet_waiver_covers_its_devices_only_and_can_be_revoked(model, build):
    fleet = FleetFactory()
    inside = on(build, organisation=fleet.organisation, fleet=fleet)
    outside = on(build, organisation=fleet.organisation)
    waiver = waiver_grant(
        organisation=fleet.organisation, fleet=fleet, reason="pilot", expires_at=NOW + dt.timedelta(30), now=NOW
    )
    assert refreshed(inside).is_waived and not refreshed(outside).is_waived
    waiver_revoke(waiver=waiver, now=NOW + dt.timedelta(1))
    assert not refreshed(inside).is_waived


@pytest.mark.django_db
def test_a_waiver_cannot_cover_another_organisations_device(build):
    from django.core.exceptions import ValidationError

    device = on(build)
    with pytest.raises(ValidationError):
        waiver_grant(organisation=OrganisationFactory(), device=device, reason="x", expires_at=NOW, now=days_ago(1))


# --- catalogue changes ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_publishing_a_build_recomputes_its_model_only_after_commit(model, build, django_capture_on_commit_callbacks):
    device = on(build)
    compliance.recompute()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.build_publish(
            model=model,
            build_number="NEW.1",
            security_patch_level=TODAY - dt.timedelta(40),
            released_at=days_ago(30),
        )
    assert len(callbacks) == 1
    assert refreshed(device).compliance_status == "up_to_date"  # nothing ran before the commit
    callbacks[0]()  # the commit happens: the task runs (eagerly in tests, on a worker in production)
    assert refreshed(device).compliance_status == "behind"


@pytest.mark.django_db
def test_out_of_order_publication_keeps_the_newest_release_as_target(model, build, django_capture_on_commit_callbacks):
    device = on(build)
    with django_capture_on_commit_callbacks(execute=True):
        newest = services.build_publish(
            model=model, build_number="B.2", security_patch_level=TODAY - dt.timedelta(12), released_at=days_ago(10)
        )
    with django_capture_on_commit_callbacks(execute=True):
        # Published later, released earlier (a catalogue catching up): not the target.
        services.build_publish(
            model=model, build_number="B.1", security_patch_level=TODAY - dt.timedelta(30), released_at=days_ago(25)
        )
    compliance.recompute(now=NOW)
    device = refreshed(device)
    assert device.latest_build == newest
    assert device.builds_behind == 2
    assert device.behind_since == (days_ago(25) + dt.timedelta(days=14)).date()


@pytest.mark.django_db
def test_revocation_arriving_before_the_publication_it_revokes_is_kept(model, build):
    pulled = OSBuildFactory(model=model, released_at=days_ago(20), is_revoked=True, revoked_at=days_ago(19))
    device = on(build)
    compliance.recompute(now=NOW)
    assert refreshed(device).latest_build == build
    # A later import of the same build (not revoked in that file) would un-revoke it; the service path
    # for revocation is idempotent.
    services.build_revoke(build=pulled)
    assert refreshed(device).latest_build == build


@pytest.mark.django_db
def test_publishing_a_build_that_devices_already_report_makes_them_known(
    model, build, django_capture_on_commit_callbacks
):
    device = DeviceFactory(
        model=model, current_build=None, reported_build_number="INHOUSE.7", last_check_in_at=days_ago(1)
    )
    compliance.recompute(now=NOW)
    assert refreshed(device).compliance_status == "unknown"
    with django_capture_on_commit_callbacks(execute=True):
        services.build_publish(
            model=model,
            build_number="INHOUSE.7",
            security_patch_level=TODAY - dt.timedelta(5),
            released_at=days_ago(3),
            organisation=device.organisation,
        )
    device = refreshed(device)
    assert device.current_build.build_number == "INHOUSE.7"
    assert device.compliance_status == "up_to_date"


@pytest.mark.django_db
def test_moving_a_support_date_makes_devices_unsupported(model, build, django_capture_on_commit_callbacks):
    device = on(build)
    with django_capture_on_commit_callbacks(execute=True):
        model.security_support_until, model.os_support_until = TODAY - dt.timedelta(1), None
        services.model_save(model=model, changed=["security_support_until", "os_support_until"])
    assert refreshed(device).compliance_status == "unsupported"


# --- check-ins (inline path) ---------------------------------------------------------------------
def check_in(device, report, now=NOW):
    """One report through the check-in path (a batch of one, as a single API check-in is)."""
    [result] = checkins_ingest(
        organisation_id=device.organisation_id,
        submissions=[Submission(DeviceIdentity(serial=device.serial), report)],
        can_enrol=False,
        now=now,
    )
    return result


@pytest.mark.django_db
def test_a_check_in_recomputes_the_device_inline_and_records_the_transition(model, build):
    newer = OSBuildFactory(model=model, released_at=days_ago(30), security_patch_level=TODAY - dt.timedelta(31))
    device = on(build)
    compliance.recompute(now=NOW)
    assert refreshed(device).compliance_status == "behind"
    outcome = check_in(
        device,
        Report(reported_at=NOW, build_number=newer.build_number, security_patch_level=newer.security_patch_level),
    )
    assert (outcome.status, outcome.applied, outcome.compliance_status) == ("created", True, "up_to_date")
    change = StatusChange.objects.filter(device=device).latest("changed_at")
    assert (change.from_status, change.to_status, change.reason) == ("behind", "up_to_date", "check-in")


@pytest.mark.django_db
def test_an_older_report_is_kept_in_history_but_does_not_regress_the_device(model, build):
    newer = OSBuildFactory(model=model, released_at=days_ago(30), security_patch_level=TODAY - dt.timedelta(31))
    device = on(newer)
    Device.objects.filter(pk=device.pk).update(last_check_in_at=days_ago(1))
    outcome = check_in(device, Report(reported_at=days_ago(5), build_number=build.build_number))
    assert (outcome.status, outcome.applied) == ("created", False)
    assert refreshed(device).current_build == newer
    assert device.check_ins.count() == 1


@pytest.mark.django_db
def test_the_same_report_twice_is_stored_once(build):
    device = on(build)
    report = Report(reported_at=NOW, build_number=build.build_number)
    assert check_in(device, report).status == "created"
    assert check_in(device, report).status == "duplicate"
    assert device.check_ins.count() == 1


@pytest.mark.django_db
def test_a_report_without_build_number_keeps_the_last_known_build(build):
    device = on(build)
    check_in(device, Report(reported_at=NOW, battery_level_pct=55, source="headwind"))
    device = refreshed(device)
    assert (device.current_build, device.battery_level_pct, device.last_check_in_at) == (build, 55, NOW)


# --- the sweep -----------------------------------------------------------------------------------


def _fleet_of(count: int, build) -> None:
    organisation = OrganisationFactory()
    Device.objects.bulk_create(
        Device(
            organisation=organisation,
            serial=f"BULK{count}-{i}",
            model=build.model,
            current_build=build,
            security_patch_level=build.security_patch_level,
            last_check_in_at=days_ago(i % 45),
        )
        for i in range(count)
    )


@pytest.mark.django_db
@pytest.mark.parametrize("count", [10, 1000])
def test_the_sweeps_query_count_does_not_grow_with_the_fleet(count, build, django_assert_max_num_queries):
    OSBuildFactory(model=build.model, released_at=days_ago(20))
    _fleet_of(count, build)
    with django_assert_max_num_queries(5):
        result = compliance.recompute(now=NOW)
    assert result.updated == count
    assert StatusChange.objects.count() == count


@pytest.mark.django_db
def test_the_sweep_task_writes_each_transition_once_when_run_twice(build):
    _fleet_of(20, build)
    first = sweep_compliance.apply().get()
    second = sweep_compliance.apply().get()
    assert first["updated"] == 20 and second["updated"] == 0
    assert StatusChange.objects.count() == 20


@pytest.mark.django_db
def test_the_sweep_is_scheduled_every_15_minutes_in_django_celery_beat():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="updates.sweep_compliance")
    assert task.enabled
    assert (task.interval.every, task.interval.period) == (15, "minutes")


@pytest.mark.django_db(transaction=True)
def test_overlapping_sweeps_record_each_transition_once(model, build):
    """Two sweeps at once, each in its own transaction and connection: the second waits for the first
    (row locks on PostgreSQL, the write lock on SQLite) and then finds nothing left to record."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers by design (BEGIN IMMEDIATE); the race exists on PostgreSQL only")
    _fleet_of(200, build)
    OSBuildFactory(model=model, released_at=days_ago(20))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def sweep() -> None:
        try:
            barrier.wait()
            with transaction.atomic():
                compliance.recompute(now=NOW, reason="sweep")
        except BaseException as error:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    per_device = StatusChange.objects.values("device").annotate(n=Count("id"))
    assert per_device.count() == 200
    assert max(row["n"] for row in per_device) == 1


# --- reads ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_time_to_patch_gives_count_median_and_90th_percentile_days(model, build):
    from devices.compliance.time_to_patch import time_to_patch
    from tests.factories import CheckInFactory

    release = days_ago(30)
    target = OSBuildFactory(model=model, released_at=release)
    for day in range(1, 11):  # ten devices installing it 1..10 days after release
        device = on(build)
        CheckInFactory(device=device, build=build, reported_at=release - dt.timedelta(days=1))
        CheckInFactory(device=device, build=target, reported_at=release + dt.timedelta(days=day))
        CheckInFactory(device=device, build=target, reported_at=release + dt.timedelta(days=day + 5))
    figures = time_to_patch(build_ids=[target.pk])[target.pk]
    assert figures.installed_devices == 10
    assert figures.median_days == pytest.approx(5.5)
    assert figures.p90_days == pytest.approx(9.1)


@pytest.mark.django_db
def test_models_reaching_end_of_support_within_the_warning_window(build):
    from devices.selectors import models_reaching_end_of_support

    device = on(build)
    soon = DeviceModelFactory(security_support_until=TODAY + dt.timedelta(days=100))
    DeviceFactory.create_batch(3, organisation=device.organisation, model=soon)
    DeviceFactory(
        organisation=device.organisation, model=DeviceModelFactory(security_support_until=TODAY + dt.timedelta(400))
    )
    rows = list(models_reaching_end_of_support(organisation_id=device.organisation_id, today=TODAY, within_days=180))
    assert [(m.pk, m.device_count) for m in rows] == [(soon.pk, 3)]


@pytest.mark.django_db
def test_recompute_takes_any_device_queryset_as_its_scope(build):
    chosen = on(build, asset_tag="PICK")
    other = on(build)
    result = compliance.recompute(devices=Device.objects.filter(asset_tag="PICK", last_check_in_at__lte=NOW), now=NOW)
    assert result.updated == 1
    assert (refreshed(chosen).compliance_status, refreshed(other).compliance_status) == ("up_to_date", "unknown")


@pytest.mark.django_db(transaction=True)
def test_two_tally_rewrites_at_once_leave_one_set_of_tallies(model, build):
    """The second rewrite waits for the first to commit, then replaces its rows instead of adding to them."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers by design (BEGIN IMMEDIATE); the race exists on PostgreSQL only")
    from devices.models import DeviceTally

    _fleet_of(50, build)
    tallies.tally_devices(now=NOW)
    first_done, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with transaction.atomic():
                tallies.tally_devices(now=NOW)
                first_done.set()
                release.wait(timeout=30)
        except BaseException as error:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    def second() -> None:
        try:
            first_done.wait(timeout=30)
            with transaction.atomic():
                tallies.tally_devices(now=NOW)
        except BaseException as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    # Let the first commit only once the second is blocked behind it.
    with connection.cursor() as cursor:
        for _ in range(300):
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            if cursor.fetchone()[0]:
                break
            time.sleep(0.05)
    release.set()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors
    assert sum(DeviceTally.objects.values_list("count", flat=True)) == 50
