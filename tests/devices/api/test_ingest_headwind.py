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
