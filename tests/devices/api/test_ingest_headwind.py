"""POST /api/v1/ingest/headwind/: Headwind MDM device info reports."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from devices.models import CheckIn, Device
from tests.factories import DeviceFactory

URL = "/api/v1/ingest/headwind/"


def info(serial: str = "A-0001", **fields) -> dict:
    return {
        "deviceId": "h0042",
        "serial": serial,
        "model": "Core-Z5",
        "androidVersion": "13",
        "batteryLevel": 64,
        "batteryCharging": "",
        "launcherVersion": "5.27",
        "mdmMode": True,
        "permissions": [1, 1, 1],
        **fields,
    }


def test_a_headwind_report_keeps_the_devices_last_known_build(reporter_a, device_a, public_build):
    device_a.current_build = public_build
    device_a.reported_build_number = public_build.build_number
    device_a.save()

    response = reporter_a.post(URL, info(device_a.serial), format="json")

    assert response.status_code == 201, response.json()
    device_a.refresh_from_db()
    assert device_a.current_build == public_build
    assert device_a.reported_build_number == public_build.build_number
    assert device_a.battery_level_pct == 64
    assert device_a.android_version == "13"
    check_in = CheckIn.objects.get(device=device_a)
    assert (check_in.source, check_in.build_number, check_in.agent_version) == ("headwind", "", "5.27")


def test_a_headwind_report_without_timestamp_is_dated_when_received(reporter_a, device_a):
    before = timezone.now()

    reporter_a.post(URL, info(device_a.serial), format="json")

    assert before <= CheckIn.objects.get(device=device_a).reported_at <= timezone.now()


def test_a_headwind_timestamp_makes_a_resent_report_a_duplicate(reporter_a, device_a):
    stamp = int((timezone.now() - dt.timedelta(minutes=5)).timestamp() * 1000)

    first = reporter_a.post(URL, info(device_a.serial, timestamp=stamp), format="json")
    again = reporter_a.post(URL, info(device_a.serial, timestamp=stamp), format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert CheckIn.objects.filter(device=device_a).count() == 1


def test_an_unknown_headwind_device_is_enrolled_by_an_mdm_with_enrol(mdm_a, org_a, phone_model):
    response = mdm_a.post(URL, info("HW-NEW"), format="json")

    assert response.status_code == 201
    assert Device.objects.get(organisation=org_a, serial="HW-NEW").model == phone_model


def test_a_list_of_headwind_reports_answers_per_item(reporter_a, org_a, device_a):
    other = DeviceFactory(organisation=org_a)

    response = reporter_a.post(
        URL, [info(device_a.serial), info(other.serial, timestamp="yesterday", deviceId="h0043")], format="json"
    )

    assert [r["status"] for r in response.json()["results"]] == ["created", "error"]
    assert list(response.json()["results"][1]["errors"]) == ["timestamp"]


def test_a_headwind_report_needs_the_report_scope(reader_a, anonymous, device_a):
    assert anonymous.post(URL, info(), format="json").status_code == 401
    assert reader_a.post(URL, info(), format="json").status_code == 403


def test_two_headwind_phones_sending_serial_unknown_are_two_devices(mdm_a, org_a, phone_model):
    response = mdm_a.post(
        URL,
        [info("unknown", deviceId="h0001", batteryLevel=30), info("unknown", deviceId="h0002", batteryLevel=70)],
        format="json",
    )

    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "created"]
    assert results[0]["device_id"] != results[1]["device_id"]
    assert "serial" in results[0]["warnings"]
    first = Device.objects.get(pk=results[0]["device_id"])
    assert (first.serial, first.model, first.battery_level_pct) == ("headwind:h0001", phone_model, 30)

    later = mdm_a.post(URL, info("unknown", deviceId="h0002", batteryLevel=65, timestamp=_ms_ago(1)), format="json")

    assert later.status_code == 201
    assert later.json()["device_id"] == results[1]["device_id"]
    assert Device.objects.filter(organisation=org_a).count() == 2


def test_a_headwind_report_with_a_junk_imei_is_stored_with_a_warning(reporter_a, device_a):
    response = reporter_a.post(URL, info(device_a.serial, imei="null", batteryLevel=12), format="json")

    assert response.status_code == 201, response.json()
    assert list(response.json()["warnings"]) == ["imei"]
    device_a.refresh_from_db()
    assert device_a.battery_level_pct == 12


def test_a_headwind_battery_level_over_100_is_dropped_with_a_warning(reporter_a, device_a):
    response = reporter_a.post(URL, info(device_a.serial, batteryLevel=300), format="json")

    assert response.status_code == 201
    assert list(response.json()["warnings"]) == ["batteryLevel"]
    assert CheckIn.objects.get(device=device_a).battery_level_pct is None


def test_a_contradictory_imei_is_flagged_on_the_device_and_shown_by_the_api(reporter_a, mdm_a, device_a):
    own = device_a.imei

    response = reporter_a.post(URL, info(device_a.serial, imei="490154203237518"), format="json")

    assert response.status_code == 201
    assert own in response.json()["warnings"]["imei"][0]
    shown = mdm_a.get(f"/api/v1/devices/{device_a.pk}/").json()
    assert "490154203237518" in shown["identity_conflict"]
    assert shown["identity_conflict_at"] is not None
    assert shown["imei"] == own


def _ms_ago(minutes: int) -> int:
    return int((timezone.now() - dt.timedelta(minutes=minutes)).timestamp() * 1000)
