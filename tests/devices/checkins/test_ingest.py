"""The set-based check-in service: the single-device rules, applied to a batch in a constant number of statements."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import threading

import pytest
from django.utils import timezone

from devices.checkins.ingest import ItemStatus, Submission, checkins_ingest, collector_paused
from devices.checkins.parsers import DeviceIdentity, Report
from devices.choices import CheckInSource, ComplianceStatus
from devices.models import CheckIn, Device, StatusChange
from tests.factories import DeviceFactory, DeviceModelFactory, ManufacturerFactory, OrganisationFactory, OSBuildFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
T1 = NOW - dt.timedelta(hours=3)
T2 = NOW - dt.timedelta(hours=2)
T3 = NOW - dt.timedelta(hours=1)


@pytest.fixture
def catalogue():
    """A model with two builds: the older one 60 days old, the newest one 10 days old."""
    model = DeviceModelFactory(name="Core-Z5", slug="core-z5", manufacturer=ManufacturerFactory(name="Crosscall"))
    old = OSBuildFactory(
        model=model,
        build_number="OLD.001",
        security_patch_level=NOW.date() - dt.timedelta(days=60),
        released_at=NOW - dt.timedelta(days=60),
    )
    new = OSBuildFactory(
        model=model,
        build_number="NEW.002",
        security_patch_level=NOW.date() - dt.timedelta(days=10),
        released_at=NOW - dt.timedelta(days=10),
    )
    return model, old, new


def report(at: dt.datetime, build: str = "NEW.002", **fields) -> Report:
    values = {"security_patch_level": NOW.date() - dt.timedelta(days=10), "battery_level_pct": 80, **fields}
    return Report(reported_at=at, build_number=build, **values)


def ingest(org, pairs, *, can_enrol=False, now=NOW):
    return checkins_ingest(
        organisation_id=org.pk,
        submissions=[Submission(identity, rep) for identity, rep in pairs],
        can_enrol=can_enrol,
        now=now,
    )


def by_serial(device) -> DeviceIdentity:
    return DeviceIdentity(serial=device.serial)


def test_a_report_is_stored_applied_and_evaluated(catalogue):
    model, _, new = catalogue
    device = DeviceFactory(model=model)

    [result] = ingest(device.organisation, [(by_serial(device), report(T1))])

    assert result.status == ItemStatus.CREATED
    assert result.device_id == device.pk
    device.refresh_from_db()
    assert device.current_build == new
    assert device.reported_build_number == "NEW.002"
    assert device.last_check_in_at == T1
    assert device.battery_level_pct == 80
    assert device.compliance_status == ComplianceStatus.UP_TO_DATE == result.compliance_status
    assert StatusChange.objects.filter(device=device, to_status=ComplianceStatus.UP_TO_DATE).count() == 1


def test_the_same_report_sent_twice_is_stored_once(catalogue):
    device = DeviceFactory(model=catalogue[0])
    ingest(device.organisation, [(by_serial(device), report(T1))])

    [again] = ingest(device.organisation, [(by_serial(device), report(T1))])

    assert again.status == ItemStatus.DUPLICATE
    assert CheckIn.objects.filter(device=device).count() == 1


def test_duplicates_inside_one_batch_are_collapsed(catalogue):
    device = DeviceFactory(model=catalogue[0])

    results = ingest(device.organisation, [(by_serial(device), report(T1)), (by_serial(device), report(T1))])

    assert [r.status for r in results] == [ItemStatus.CREATED, ItemStatus.DUPLICATE]
    assert CheckIn.objects.filter(device=device).count() == 1


def test_an_older_report_is_kept_in_history_but_never_regresses_the_device(catalogue):
    model, old, new = catalogue
    device = DeviceFactory(model=model)
    ingest(device.organisation, [(by_serial(device), report(T3, "NEW.002"))])

    [late] = ingest(device.organisation, [(by_serial(device), report(T1, "OLD.001", battery_level_pct=20))])

    assert late.status == ItemStatus.CREATED
    assert late.applied is False
    device.refresh_from_db()
    assert device.current_build == new
    assert device.last_check_in_at == T3
    assert device.battery_level_pct == 80
    assert CheckIn.objects.filter(device=device).count() == 2


def test_several_reports_of_one_device_in_a_batch_end_on_the_newest(catalogue):
    model, old, new = catalogue
    device = DeviceFactory(model=model)

    ingest(
        device.organisation,
        [
            (by_serial(device), report(T3, "NEW.002", battery_level_pct=None)),
            (by_serial(device), report(T1, "OLD.001", battery_level_pct=55)),
        ],
    )

    device.refresh_from_db()
    assert device.current_build == new
    assert device.last_check_in_at == T3
    # The newest report did not say its battery level: the last known one (from T1) is kept.
    assert device.battery_level_pct == 55


def test_a_build_unknown_to_the_catalogue_is_recorded_and_judged_by_its_patch_level(catalogue):
    device = DeviceFactory(model=catalogue[0])

    [result] = ingest(device.organisation, [(by_serial(device), report(T1, "CUSTOM.999"))])

    device.refresh_from_db()
    assert device.reported_build_number == "CUSTOM.999"
    assert device.current_build is None
    # Its patch level is the newest build's: nothing to install, whatever the catalogue lacks.
    assert result.compliance_status == ComplianceStatus.UP_TO_DATE
    assert CheckIn.objects.get(device=device).build_number == "CUSTOM.999"
    observed = device.organisation.observed_builds.get()
    assert (observed.model, observed.build_number, observed.first_seen_at) == (catalogue[0], "CUSTOM.999", T1)


def test_a_report_without_build_number_keeps_the_last_known_build(catalogue):
    model, _, new = catalogue
    device = DeviceFactory(model=model)
    ingest(device.organisation, [(by_serial(device), report(T1))])

    ingest(device.organisation, [(by_serial(device), report(T2, "", android_version="14"))])

    device.refresh_from_db()
    assert device.current_build == new
    assert device.reported_build_number == "NEW.002"
    assert device.last_check_in_at == T2


def test_an_organisations_private_build_wins_over_the_public_one_of_the_same_number(catalogue):
    model, _, _ = catalogue
    device = DeviceFactory(model=model)
    private = OSBuildFactory(model=model, build_number="NEW.002", organisation=device.organisation)

    ingest(device.organisation, [(by_serial(device), report(T1))])

    device.refresh_from_db()
    assert device.current_build == private


def test_a_device_is_found_by_imei_alone(catalogue):
    device = DeviceFactory(model=catalogue[0])

    [result] = ingest(device.organisation, [(DeviceIdentity(imei=device.imei), report(T1))])

    assert result.device_id == device.pk


def test_a_report_whose_imei_is_another_devices_is_stored_on_its_serials_device_and_flagged(catalogue):
    one = DeviceFactory(model=catalogue[0])
    other = DeviceFactory(model=catalogue[0], organisation=one.organisation)
    own_imei = one.imei

    [result] = ingest(one.organisation, [(DeviceIdentity(serial=one.serial, imei=other.imei), report(T1))])

    assert result.status == ItemStatus.CREATED
    assert result.device_id == one.pk
    assert other.serial in result.warnings["imei"][0]
    one.refresh_from_db()
    assert one.imei == own_imei  # not overwritten
    assert one.battery_level_pct == 80  # the rest of the report is the device's
    assert other.imei in one.identity_conflict and other.serial in one.identity_conflict
    assert one.identity_conflict_at == NOW
    assert not CheckIn.objects.filter(device=other).exists()


def test_an_unknown_device_is_an_error_without_the_enrol_scope(catalogue):
    org = OrganisationFactory()

    [result] = ingest(org, [(DeviceIdentity(serial="NEW-1"), report(T1))], can_enrol=False)

    assert result.status == ItemStatus.ERROR
    assert "serial" in result.errors
    assert not Device.objects.exists()


def test_an_unknown_device_is_enrolled_with_the_enrol_scope_and_its_model_resolved_by_name(catalogue):
    model = catalogue[0]
    org = OrganisationFactory()

    results = ingest(
        org,
        [
            (DeviceIdentity(serial="NEW-1", model_names=("crosscall core-z5",)), report(T1)),
            (DeviceIdentity(serial="NEW-2", model_names=("CORE-Z5",)), report(T1)),
            (DeviceIdentity(serial="NEW-3", model_names=("core-z5",)), report(T1)),
        ],
        can_enrol=True,
    )

    assert [r.status for r in results] == [ItemStatus.CREATED] * 3
    assert all(r.enrolled for r in results)
    devices = Device.objects.filter(organisation=org).order_by("serial")
    assert [d.model_id for d in devices] == [model.pk] * 3
    assert {d.compliance_status for d in devices} == {ComplianceStatus.UP_TO_DATE}


def test_a_device_of_an_unknown_model_is_enrolled_without_model_and_judged_by_its_patch_level(catalogue):
    org = OrganisationFactory()
    identity = DeviceIdentity(serial="NEW-1", model_names=("Nokia 3310",))

    [result] = ingest(org, [(identity, report(T1))], can_enrol=True)

    device = Device.objects.get(pk=result.device_id)
    assert device.model is None
    assert device.reported_build_number == "NEW.002"
    assert result.compliance_status == ComplianceStatus.UP_TO_DATE
    # Without a patch level nor a known build, nothing can be judged.
    silent_identity = DeviceIdentity(serial="NEW-2", model_names=("Nokia 3310",))
    [result] = ingest(org, [(silent_identity, report(T2, security_patch_level=None))], can_enrol=True)
    assert result.compliance_status == ComplianceStatus.UNKNOWN


def test_an_unknown_device_named_by_imei_only_cannot_be_enrolled(catalogue):
    org = OrganisationFactory()

    [result] = ingest(org, [(DeviceIdentity(imei="356938035643809"), report(T1))], can_enrol=True)

    assert result.status == ItemStatus.ERROR
    assert not Device.objects.exists()


def test_one_new_serial_reported_twice_in_a_batch_is_enrolled_once(catalogue):
    org = OrganisationFactory()
    identity = DeviceIdentity(serial="NEW-1", model_names=("core-z5",))

    results = ingest(org, [(identity, report(T1)), (identity, report(T2))], can_enrol=True)

    assert Device.objects.filter(organisation=org).count() == 1
    assert results[0].device_id == results[1].device_id
    assert CheckIn.objects.count() == 2


def test_a_client_of_b_reporting_a_serial_of_a_never_touches_as_device(catalogue):
    device_a = DeviceFactory(model=catalogue[0])
    org_b = OrganisationFactory()

    [refused] = ingest(org_b, [(by_serial(device_a), report(T1))], can_enrol=False)
    [enrolled] = ingest(org_b, [(by_serial(device_a), report(T2))], can_enrol=True)

    assert refused.status == ItemStatus.ERROR
    assert enrolled.device_id != device_a.pk
    assert Device.objects.get(pk=enrolled.device_id).organisation == org_b
    device_a.refresh_from_db()
    assert device_a.last_check_in_at is None
    assert not CheckIn.objects.filter(device=device_a).exists()


def test_the_same_report_from_two_sources_is_two_check_ins(catalogue):
    device = DeviceFactory(model=catalogue[0])

    ingest(device.organisation, [(by_serial(device), report(T1))])
    [amapi] = ingest(
        device.organisation, [(by_serial(device), dataclasses.replace(report(T1), source=CheckInSource.AMAPI))]
    )

    assert amapi.status == ItemStatus.CREATED
    assert CheckIn.objects.filter(device=device).count() == 2


def test_a_batch_repeating_a_stored_report_next_to_a_new_one_of_the_same_device_answers_each(catalogue):
    device = DeviceFactory(model=catalogue[0])
    ingest(device.organisation, [(by_serial(device), report(T1))])

    results = ingest(device.organisation, [(by_serial(device), report(T2)), (by_serial(device), report(T1))])

    assert [r.status for r in results] == [ItemStatus.CREATED, ItemStatus.DUPLICATE]
    device.refresh_from_db()
    assert device.last_check_in_at == T2


def test_a_batch_stores_timestamps_dates_and_raw_payloads_exactly_as_the_orm_would(catalogue):
    """The batch's rows travel as one JSON document on PostgreSQL: nothing may be lost or shifted on the way."""
    device = DeviceFactory(model=catalogue[0])
    at = (T1 + dt.timedelta(microseconds=123456)).astimezone(dt.timezone(dt.timedelta(hours=-5, minutes=-30)))
    raw = {
        "serial": device.serial,
        "note": 'quotes " and \\ backslashes, {braces}, commas, NULL, "null"',
        "name": "Équipe de nuit – 夜班 🚒",
        "nested": {"list": [1, 2.5, None, True, {"deep": ["x"]}], "empty": {}},
    }
    patch_level = dt.date(2024, 2, 29)

    [result] = ingest(
        device.organisation,
        [(by_serial(device), report(at, security_patch_level=patch_level, agent_version="v'1\"", raw=raw))],
    )

    assert result.status == ItemStatus.CREATED
    check_in = CheckIn.objects.get(device=device)
    assert check_in.reported_at == at
    assert check_in.security_patch_level == patch_level
    assert check_in.agent_version == "v'1\""
    assert check_in.raw == raw
    device.refresh_from_db()
    assert device.last_check_in_at == at
    assert device.security_patch_level == patch_level
    # Sent again (an MDM retrying), the very same key: the report is a duplicate, not a second row.
    [again] = ingest(device.organisation, [(by_serial(device), report(at))])
    assert again.status == ItemStatus.DUPLICATE
    assert CheckIn.objects.filter(device=device).count() == 1


def test_the_garbage_collector_is_paused_during_a_batch_and_left_as_it_was_found():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause found it off and leaves it off
    assert gc.isenabled()

    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError
    assert gc.isenabled()

    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # off before, off after: not ours to turn on
    finally:
        gc.enable()


def _batch(org, model, size: int, at: dt.datetime):
    devices = DeviceFactory.create_batch(size, organisation=org, model=model)
    return [(by_serial(d), report(at)) for d in devices]


def test_the_number_of_statements_does_not_grow_with_the_batch(catalogue, django_assert_max_num_queries):
    model = catalogue[0]
    org = OrganisationFactory()
    small = _batch(org, model, 10, T1)
    large = _batch(org, model, 1000, T1)
    enrol_small = [(DeviceIdentity(serial=f"S{i}", model_names=("core-z5",)), report(T1)) for i in range(10)]
    enrol_large = [(DeviceIdentity(serial=f"L{i}", model_names=("core-z5",)), report(T1)) for i in range(1000)]

    # Resolve, builds, insert, update, recompute (2-3), statuses, plus the savepoint around it.
    with django_assert_max_num_queries(12) as small_queries:
        ingest(org, small)
    with django_assert_max_num_queries(len(small_queries)):
        results = ingest(org, large)
    with django_assert_max_num_queries(14) as enrol_small_queries:
        ingest(org, enrol_small, can_enrol=True)
    with django_assert_max_num_queries(len(enrol_small_queries)):
        enrolled = ingest(org, enrol_large, can_enrol=True)

    assert {r.status for r in results + enrolled} == {ItemStatus.CREATED}
    assert CheckIn.objects.count() == 2020


def _headwind_batch(prefix: str, size: int, at: dt.datetime, imei_of=None):
    # Headwind phones sending the placeholder serial "unknown": known by their deviceId alone.
    return [
        DeviceIdentity(source=CheckInSource.HEADWIND, source_id=f"{prefix}{i}", imei=imei_of(i) if imei_of else None)
        for i in range(size)
    ], [dataclasses.replace(report(at, ""), source=CheckInSource.HEADWIND) for _ in range(size)]


def test_the_number_of_statements_stays_constant_with_mdm_ids_enrolment_and_conflicts(
    catalogue, django_assert_max_num_queries
):
    org = OrganisationFactory()

    def run(prefix: str, size: int, at: dt.datetime, **kwargs):
        identities, reports = _headwind_batch(prefix, size, at, kwargs.pop("imei_of", None))
        return ingest(org, list(zip(identities, reports, strict=True)), can_enrol=True, **kwargs)

    # Enrolment by MDM id: the id lookup and its upsert are one statement each, whatever the size.
    with django_assert_max_num_queries(16) as small_enrol:
        run("s", 10, T1)
    with django_assert_max_num_queries(len(small_enrol)):
        enrolled = run("l", 1000, T1)
    # Later reports: found by their MDM id, nothing to upsert.
    with django_assert_max_num_queries(len(small_enrol)) as small_again:
        run("s", 10, T2)
    with django_assert_max_num_queries(len(small_again)):
        again = run("l", 1000, T2)
    assert [r.device_id for r in again] == [r.device_id for r in enrolled]
    assert Device.objects.filter(organisation=org).count() == 1010

    # Reports whose IMEI is another device's: the MDM ids move to the IMEIs' owners (a placeholder serial:
    # the IMEI wins over the MDM id) in the one upsert, and the flags are one UPDATE, whatever the size.
    owners = DeviceFactory.create_batch(1010, organisation=org, model=catalogue[0])
    imeis = [d.imei for d in owners]
    with django_assert_max_num_queries(len(small_enrol)) as small_moved:
        run("s", 10, T3, imei_of=lambda i: imeis[1000 + i])
    with django_assert_max_num_queries(len(small_moved)):
        flagged = run("l", 1000, T3, imei_of=lambda i: imeis[i])
    owners = owners[:1000]
    assert {r.device_id for r in flagged} == {d.pk for d in owners}

    # Reports matched by serial carrying another device's IMEI: flagged in one UPDATE, whatever the size.
    def contradicting(devices, at):
        return [
            (DeviceIdentity(serial=d.serial, imei=devices[(n + 1) % len(devices)].imei), report(at))
            for n, d in enumerate(devices)
        ]

    small_devices, large_devices = owners[:10], owners[10:1000]
    with django_assert_max_num_queries(14) as small_flagged:
        ingest(org, contradicting(small_devices, NOW))
    with django_assert_max_num_queries(len(small_flagged)):
        results = ingest(org, contradicting(large_devices, NOW))
    assert all(r.warnings and "imei" in r.warnings for r in results)
    assert Device.objects.filter(pk__in=[d.pk for d in large_devices]).exclude(identity_conflict="").count() == 990


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_over_the_same_devices_in_opposite_orders_do_not_deadlock():
    from django.db import connection

    if connection.vendor != "postgresql":
        # Not a missing service: the embedded-default run uses SQLite, whose writers are serialised.
        pytest.skip("row locks and deadlocks exist on PostgreSQL only; the PostgreSQL run covers this")
    model = DeviceModelFactory()
    OSBuildFactory(model=model, build_number="NEW.002")
    org = OrganisationFactory()
    devices = DeviceFactory.create_batch(200, organisation=org, model=model)
    errors: list[BaseException] = []

    def run(ordered: list, offset: int) -> None:
        try:
            for round_ in range(5):
                at = NOW - dt.timedelta(minutes=10 * round_ + offset)
                ingest(org, [(by_serial(d), report(at)) for d in ordered])
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(devices, 1)),
        threading.Thread(target=run, args=(list(reversed(devices)), 2)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert CheckIn.objects.filter(device__organisation=org).count() == 2000
