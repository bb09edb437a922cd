"""Which device a report names: placeholder serials are no identity, devices are matched by IMEI then by
the MDM's own id (Headwind deviceId, AMAPI name), a contradictory IMEI is flagged, junk secondary fields
are dropped with a warning. Payloads shaped as Headwind's launcher, the Android Management API and
FleetPatch's own format send them."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from devices.checkins.ingest import ItemStatus, Submission, batch_warnings, checkins_ingest
from devices.checkins.parsers import parse_amapi, parse_headwind, parse_native
from devices.models import CheckIn, Device, DeviceSourceId
from devices.validators import is_placeholder_serial
from tests.devices.checkins.test_parsers import amapi_device
from tests.factories import DeviceFactory, DeviceSourceIdFactory, OrganisationFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
PLACEHOLDERS = [
    "unknown",
    "UNKNOWN",
    "0123456789ABCDEF",
    "",
    "0000000000",
    "null",
    "None",
    "n/a",
    "serial",
    "1234567890",
]
IMEI_A = "356938035643809"
IMEI_B = "490154203237518"


def headwind(device_id: str, *, serial: str = "unknown", imei: str | None = None, **fields) -> dict:
    """A DeviceInfo as Headwind's launcher posts it (com.hmdm.launcher.json.DeviceInfo)."""
    info = {
        "model": "Core-Z5",
        "permissions": [1, 1, 1],
        "applications": [{"pkg": "com.hmdm.launcher", "name": "Headwind MDM", "version": "5.27"}],
        "files": [],
        "deviceId": device_id,
        "phone": "",
        "mdmMode": True,
        "kioskMode": False,
        "batteryLevel": 64,
        "batteryCharging": "",
        "androidVersion": "13",
        "location": {"ts": 1709281800000, "lat": 48.85, "lon": 2.35},
        "launcherType": "",
        "launcherPackage": "com.hmdm.launcher",
        "defaultLauncher": True,
        "iccid": "",
        "imsi": "",
        "cpu": "arm64-v8a",
        "serial": serial,
        **fields,
    }
    if imei is not None:
        info["imei"] = imei
    return info


def ingest(org, parsed, *, can_enrol=True):
    assert all(p.errors is None for p in parsed), [p.errors for p in parsed]
    return checkins_ingest(
        organisation_id=org.pk,
        submissions=[Submission(p.identity, p.report) for p in parsed],
        can_enrol=can_enrol,
        now=NOW,
    )


def hw(info: dict, at: dt.datetime = NOW - dt.timedelta(hours=1)):
    return parse_headwind(info, received_at=at)


@pytest.mark.parametrize("serial", PLACEHOLDERS)
def test_every_kind_of_placeholder_serial_is_no_identity(serial):
    assert is_placeholder_serial(serial)


@pytest.mark.parametrize("serial", ["R58N12ABCDE", "SN00000001", "00000000A", "HW-1", "A", "AB"])
def test_real_serials_are_identities(serial):
    assert not is_placeholder_serial(serial)


@pytest.mark.parametrize("serial", PLACEHOLDERS)
def test_two_native_phones_sending_the_same_placeholder_serial_are_never_merged(serial):
    org = OrganisationFactory()
    one = DeviceFactory(organisation=org, imei=IMEI_A)
    two = DeviceFactory(organisation=org, imei=IMEI_B)
    reports = [
        parse_native({"serial": serial, "imei": imei, "reported_at": NOW.isoformat(), "battery_level": level})
        for imei, level in ((IMEI_A, 11), (IMEI_B, 22))
    ]

    results = ingest(org, reports)

    assert [r.device_id for r in results] == [one.pk, two.pk]
    assert Device.objects.filter(organisation=org).count() == 2
    one.refresh_from_db()
    two.refresh_from_db()
    assert (one.battery_level_pct, two.battery_level_pct) == (11, 22)
    if serial:
        assert "placeholder" in results[0].warnings["serial"][0]


def test_a_native_report_with_only_a_placeholder_serial_names_no_device():
    parsed = parse_native({"serial": "unknown", "reported_at": NOW.isoformat()})

    assert list(parsed.errors) == ["serial"]
    assert "placeholder" in parsed.errors["serial"][0]


def test_two_headwind_phones_sending_serial_unknown_are_two_devices_and_their_next_reports_find_them():
    org = OrganisationFactory()

    first = ingest(org, [hw(headwind("h0001", batteryLevel=40)), hw(headwind("h0002", batteryLevel=90))])

    assert [r.status for r in first] == [ItemStatus.CREATED] * 2
    assert all(r.enrolled for r in first)
    assert first[0].device_id != first[1].device_id
    devices = {d.serial: d for d in Device.objects.filter(organisation=org)}
    assert set(devices) == {"headwind:h0001", "headwind:h0002"}
    assert set(DeviceSourceId.objects.values_list("source", "external_id", "device_id")) == {
        ("headwind", "h0001", first[0].device_id),
        ("headwind", "h0002", first[1].device_id),
    }

    later = NOW - dt.timedelta(minutes=5)
    again = ingest(org, [hw(headwind("h0002", batteryLevel=85), later), hw(headwind("h0001", batteryLevel=35), later)])

    assert [r.device_id for r in again] == [first[1].device_id, first[0].device_id]
    assert not any(r.enrolled for r in again)
    assert Device.objects.filter(organisation=org).count() == 2
    assert Device.objects.get(pk=first[0].device_id).battery_level_pct == 35
    assert Device.objects.get(pk=first[1].device_id).battery_level_pct == 85


def test_headwind_number_is_taken_as_its_device_id_too():
    org = OrganisationFactory()
    info = headwind("")
    del info["deviceId"]
    info["number"] = "h0003"

    [result] = ingest(org, [hw(info)])

    assert Device.objects.get(pk=result.device_id).serial == "headwind:h0003"


def test_a_placeholder_serial_is_matched_by_imei_before_the_mdm_id():
    org = OrganisationFactory()
    by_imei = DeviceFactory(organisation=org, imei=IMEI_A)
    by_id = DeviceFactory(organisation=org, imei=None)
    DeviceSourceIdFactory(device=by_id, external_id="h0009")

    [result] = ingest(org, [hw(headwind("h0009", imei=IMEI_A))])

    assert result.device_id == by_imei.pk
    assert result.warnings == {"serial": [result.warnings["serial"][0]]}
    # The MDM id now names the phone its IMEI found (Headwind gave the number to that phone).
    assert DeviceSourceId.objects.get(external_id="h0009").device_id == by_imei.pk


def test_a_placeholder_serial_without_imei_is_matched_by_the_mdm_id():
    org = OrganisationFactory()
    device = DeviceFactory(organisation=org, serial="KNOWN-1")
    DeviceSourceIdFactory(device=device, external_id="h0010")

    [result] = ingest(org, [hw(headwind("h0010"))], can_enrol=False)

    assert result.device_id == device.pk
    assert CheckIn.objects.get(device=device).battery_level_pct == 64


def test_an_amapi_device_without_serial_is_found_by_its_name_in_every_later_report():
    org = OrganisationFactory()
    resource = amapi_device(hardwareInfo={"brand": "samsung", "model": "SM-G556B", "serialNumber": ""})
    resource["networkInfo"] = {}
    later = {**resource, "lastStatusReportTime": "2024-03-02T07:30:00Z"}

    [enrolled] = ingest(org, [parse_amapi(resource)])
    [again] = ingest(org, [parse_amapi(later)], can_enrol=False)

    assert again.device_id == enrolled.device_id
    device = Device.objects.get(pk=enrolled.device_id)
    assert device.serial == "amapi:enterprises/LC00abcd/devices/3a1b2c3d4e5f"
    assert DeviceSourceId.objects.get(device=device).external_id == resource["name"]
    assert CheckIn.objects.filter(device=device).count() == 2


def test_a_phone_enrolled_by_its_mdm_id_is_found_when_it_later_reports_its_real_serial():
    org = OrganisationFactory()
    [first] = ingest(org, [hw(headwind("h0011", imei=IMEI_A))])

    [later] = ingest(org, [hw(headwind("h0011", serial="R58N12ABCDE", imei=IMEI_A), NOW)], can_enrol=False)

    assert later.device_id == first.device_id
    # Nothing about its identity (its model, unknown to this catalogue, is another matter).
    assert not {"serial", "imei"} & set(later.warnings or {})


def test_an_mdm_id_given_to_another_phone_with_a_real_serial_moves_to_it():
    org = OrganisationFactory()
    old = DeviceFactory(organisation=org, serial="OLD-PHONE", imei=None)
    DeviceSourceIdFactory(device=old, external_id="h0012")

    [result] = ingest(org, [hw(headwind("h0012", serial="NEW-PHONE"))])

    assert result.enrolled
    new = Device.objects.get(organisation=org, serial="NEW-PHONE")
    assert result.device_id == new.pk
    assert DeviceSourceId.objects.get(external_id="h0012").device == new
    assert not CheckIn.objects.filter(device=old).exists()


def test_a_report_with_another_imei_than_the_devices_own_is_flagged_not_merged():
    org = OrganisationFactory()
    device = DeviceFactory(organisation=org, serial="HW-1", imei=IMEI_A)

    [result] = ingest(org, [hw(headwind("h0013", serial="HW-1", imei=IMEI_B))])

    assert result.status == ItemStatus.CREATED and result.device_id == device.pk
    assert IMEI_A in result.warnings["imei"][0]
    device.refresh_from_db()
    assert device.imei == IMEI_A
    assert IMEI_B in device.identity_conflict and IMEI_A in device.identity_conflict
    assert device.identity_conflict_at == NOW
    assert device.battery_level_pct == 64
    assert batch_warnings([result]) == [(0, result.warnings)]


def test_a_report_matched_by_its_mdm_id_with_another_imei_than_the_devices_is_flagged_on_it():
    org = OrganisationFactory()
    matched = DeviceFactory(organisation=org, imei=IMEI_A)
    DeviceSourceIdFactory(device=matched, external_id="h0014")

    [result] = ingest(org, [hw(headwind("h0014", imei=IMEI_B))], can_enrol=False)

    assert result.device_id == matched.pk
    assert set(result.warnings) == {"serial", "imei"}
    matched.refresh_from_db()
    assert matched.imei == IMEI_A
    assert IMEI_B in matched.identity_conflict


def test_a_report_matched_by_serial_carrying_another_devices_imei_is_flagged_on_the_matched_device():
    org = OrganisationFactory()
    DeviceFactory(organisation=org, serial="OWNER-1", imei=IMEI_A)
    matched = DeviceFactory(organisation=org, serial="REAL-2", imei=None)

    [result] = ingest(org, [hw(headwind("h0015", serial="REAL-2", imei=IMEI_A))])

    assert result.device_id == matched.pk
    assert "OWNER-1" in result.warnings["imei"][0]
    matched.refresh_from_db()
    assert matched.imei is None
    assert "OWNER-1" in matched.identity_conflict


def test_an_unknown_real_serial_with_another_devices_imei_is_a_new_device_flagged_not_a_merge():
    org = OrganisationFactory()
    owner = DeviceFactory(organisation=org, serial="OWNER-1", imei=IMEI_A)
    native = parse_native({"serial": "STRANGER-1", "imei": IMEI_A, "reported_at": NOW.isoformat()})

    [result] = ingest(org, [native])

    assert result.enrolled and result.device_id != owner.pk
    stranger = Device.objects.get(pk=result.device_id)
    assert stranger.imei is None
    assert "OWNER-1" in stranger.identity_conflict
    assert not CheckIn.objects.filter(device=owner).exists()


@pytest.mark.parametrize(
    ("imei", "reason"),
    [
        ("null", "placeholder"),
        ("356938035643808", "Luhn"),
        ("A0000012345678", "MEID"),
        ("99000012345678", "MEID"),
        ("000000000000000", "placeholder"),
    ],
)
def test_a_junk_secondary_imei_is_dropped_with_a_warning_and_the_rest_of_the_report_kept(imei, reason):
    org = OrganisationFactory()
    device = DeviceFactory(organisation=org, serial="HW-7", imei=None)
    at = NOW - dt.timedelta(minutes=3)

    parsed = hw(headwind("h0016", serial="HW-7", imei=imei, batteryLevel=57), at)
    [result] = ingest(org, [parsed])

    assert result.status == ItemStatus.CREATED and result.device_id == device.pk
    assert reason in result.warnings["imei"][0]
    device.refresh_from_db()
    assert (device.battery_level_pct, device.last_check_in_at, device.imei) == (57, at, None)
    # An MEID is kept nowhere but in the raw copy of what was sent.
    assert CheckIn.objects.get(device=device).raw["imei"] == imei


def test_a_junk_amapi_imei_and_battery_level_are_dropped_with_warnings_named_as_amapi_names_them():
    events = [{"eventType": "BATTERY_LEVEL_COLLECTED", "createTime": "2024-03-01T07:00:00Z", "batteryLevel": 140.0}]
    parsed = parse_amapi(amapi_device(networkInfo={"imei": "99000012345678"}, powerManagementEvents=events))

    assert parsed.errors is None
    assert set(parsed.warnings) == {"networkInfo.imei", "powerManagementEvents.batteryLevel"}
    assert parsed.identity.imei is None
    assert parsed.report.battery_level_pct is None
    assert parsed.report.security_patch_level == dt.date(2024, 2, 1)


def test_a_native_battery_level_out_of_range_stays_an_error():
    parsed = parse_native({"serial": "SN-1", "reported_at": NOW.isoformat(), "battery_level": 101})

    assert list(parsed.errors) == ["battery_level"]


def test_a_headwind_device_id_that_is_a_placeholder_is_no_identity_either():
    parsed = hw(headwind("unknown"))

    assert set(parsed.errors) == {"serial", "deviceId"}
