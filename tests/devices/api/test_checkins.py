"""POST /api/v1/checkins/ (one report or up to 1,000) and GET /api/v1/checkins/?device= (a device's history)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from devices.models import CheckIn, Device
from tests.api_personas import make_client
from tests.factories import CheckInFactory, DeviceFactory

URL = "/api/v1/checkins/"
NOW = timezone.now().replace(microsecond=0)


def report(serial: str, at: dt.datetime | None = None, **fields) -> dict:
    return {
        "serial": serial,
        "reported_at": (at or NOW - dt.timedelta(hours=1)).isoformat(),
        "build_number": "UQ1A.240105.004",
        "android_version": "14",
        "security_patch_level": (NOW.date() - dt.timedelta(days=20)).isoformat(),
        "battery_level": 80,
        **fields,
    }


# --- Auth ------------------------------------------------------------------------------------------
def test_no_token_is_401(anonymous, device_a):
    assert anonymous.post(URL, report(device_a.serial), format="json").status_code == 401


def test_a_revoked_token_is_401(revoked_a, device_a):
    assert revoked_a.post(URL, report(device_a.serial), format="json").status_code == 401


def test_a_token_without_the_report_scope_is_403(reader_a, device_a):
    response = reader_a.post(URL, report(device_a.serial), format="json")

    assert response.status_code == 403
    assert not CheckIn.objects.exists()


def test_reading_check_ins_needs_the_read_scope(reporter_a, device_a):
    assert reporter_a.get(URL, {"device": device_a.pk}).status_code == 403


# --- One report ------------------------------------------------------------------------------------
def test_one_report_is_created_then_a_duplicate(reporter_a, device_a, public_build):
    first = reporter_a.post(URL, report(device_a.serial), format="json")
    again = reporter_a.post(URL, report(device_a.serial), format="json")

    assert first.status_code == 201, first.json()
    body = first.json()
    assert body["status"] == "created"
    assert body["device_id"] == device_a.pk
    assert body["compliance_status"] == "up_to_date"
    assert body["errors"] is None
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert CheckIn.objects.filter(device=device_a).count() == 1


def test_one_bad_report_is_400_naming_the_field(reporter_a, device_a):
    response = reporter_a.post(URL, report(device_a.serial, security_patch_level="not-a-date"), format="json")

    assert response.status_code == 400
    assert response.json()["status"] == "error"
    assert list(response.json()["errors"]) == ["security_patch_level"]


def test_malformed_json_is_400(reporter_a):
    response = reporter_a.post(URL, "{not json", content_type="application/json")

    assert response.status_code == 400


def test_an_older_report_is_kept_but_does_not_regress_the_device(reporter_a, device_a, public_build):
    reporter_a.post(URL, report(device_a.serial, NOW - dt.timedelta(hours=1)), format="json")

    late = reporter_a.post(
        URL, report(device_a.serial, NOW - dt.timedelta(days=3), build_number="OLD.1", battery_level=5), format="json"
    )

    assert late.status_code == 201
    device_a.refresh_from_db()
    assert device_a.current_build == public_build
    assert device_a.battery_level_pct == 80
    assert device_a.last_check_in_at == NOW - dt.timedelta(hours=1)
    assert CheckIn.objects.filter(device=device_a).count() == 2


def test_an_unknown_build_is_recorded_and_judged_by_its_patch_level(reporter_a, device_a, public_build):
    response = reporter_a.post(URL, report(device_a.serial, build_number="CUSTOM.1"), format="json")

    # Its patch level (20 days) is judged although the catalogue lacks the build: not "unknown".
    assert response.json()["compliance_status"] != "unknown"
    device_a.refresh_from_db()
    assert device_a.reported_build_number == "CUSTOM.1"
    assert device_a.current_build is None


def test_an_unknown_device_is_an_item_error_without_the_enrol_scope(reporter_a, org_a):
    response = reporter_a.post(URL, report("NEVER-SEEN"), format="json")

    assert response.status_code == 400
    assert "serial" in response.json()["errors"]
    assert not Device.objects.filter(organisation=org_a).exists()


def test_an_unknown_device_is_enrolled_with_the_enrol_scope(mdm_a, org_a, phone_model):
    response = mdm_a.post(URL, report("NEW-1", model="crosscall core-z5"), format="json")

    assert response.status_code == 201
    assert response.json()["enrolled"] is True
    device = Device.objects.get(organisation=org_a, serial="NEW-1")
    assert device.model == phone_model


# --- A batch ---------------------------------------------------------------------------------------
def test_a_batch_answers_per_item_and_one_bad_item_never_loses_the_good_ones(reporter_a, org_a, phone_model):
    devices = DeviceFactory.create_batch(3, organisation=org_a, model=phone_model)
    batch = [
        report(devices[0].serial),
        report(devices[1].serial, battery_level=101),
        report("NEVER-SEEN"),
        report(devices[2].serial),
        report(devices[0].serial),  # the same report again, inside the batch
    ]

    response = reporter_a.post(URL, batch, format="json")

    assert response.status_code == 200
    body = response.json()
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3, 4]
    assert [r["status"] for r in body["results"]] == ["created", "error", "error", "created", "duplicate"]
    assert list(body["results"][1]["errors"]) == ["battery_level"]
    assert (body["created"], body["duplicates"], body["errors"]) == (2, 1, 2)
    assert CheckIn.objects.filter(device__in=[devices[0], devices[2]]).count() == 2
    assert not CheckIn.objects.filter(device=devices[1]).exists()


def test_a_batch_over_1000_reports_is_refused_whole_as_invalid_input(reporter_a, device_a):
    # The schema's maxItems: too many items is a 400 naming the limit; a 413 is for too many bytes.
    batch = [report(device_a.serial, NOW - dt.timedelta(minutes=i)) for i in range(1001)]

    response = reporter_a.post(URL, batch, format="json")

    assert response.status_code == 400
    assert "1000" in response.json()["non_field_errors"][0]
    assert not CheckIn.objects.exists()


def test_a_batch_of_exactly_1000_reports_is_stored(reporter_a, org_a, phone_model):
    devices = DeviceFactory.create_batch(1000, organisation=org_a, model=phone_model)

    response = reporter_a.post(URL, [report(d.serial) for d in devices], format="json")

    assert response.status_code == 200
    assert response.json()["created"] == 1000


def test_an_empty_list_is_400(reporter_a):
    assert reporter_a.post(URL, [], format="json").status_code == 400


# --- Tenants ---------------------------------------------------------------------------------------
def test_a_client_of_b_reporting_a_serial_of_a_does_not_touch_as_device(org_b, http, device_a):
    reporter_b = http(make_client(org_b, "Reporter B", ["report"])[1])

    response = reporter_b.post(URL, report(device_a.serial), format="json")

    assert response.status_code == 400
    device_a.refresh_from_db()
    assert device_a.last_check_in_at is None
    assert not CheckIn.objects.exists()


def test_a_client_of_b_with_enrol_gets_its_own_device_for_as_serial(mdm_b, org_b, device_a):
    response = mdm_b.post(URL, report(device_a.serial), format="json")

    assert response.status_code == 201
    assert response.json()["device_id"] != device_a.pk
    assert Device.objects.get(pk=response.json()["device_id"]).organisation == org_b
    assert not CheckIn.objects.filter(device=device_a).exists()


def test_a_client_of_b_cannot_read_as_check_ins_by_id_serial_or_imei(mdm_b, device_a):
    CheckInFactory(device=device_a)

    for query in ({"device": device_a.pk}, {"serial": device_a.serial}, {"imei": device_a.imei}):
        assert mdm_b.get(URL, query).status_code == 404


# --- History ---------------------------------------------------------------------------------------
def test_a_devices_check_ins_are_listed_newest_first_a_page_at_a_time(reader_a, device_a):
    for hours in range(5):
        CheckInFactory(device=device_a, reported_at=NOW - dt.timedelta(hours=hours))
    CheckInFactory(device=DeviceFactory(organisation=device_a.organisation))

    first = reader_a.get(URL, {"serial": device_a.serial, "page_size": 3}).json()
    second = reader_a.get(first["next"]).json()

    times = [row["reported_at"] for row in first["results"] + second["results"]]
    assert len(times) == 5
    assert times == sorted(times, reverse=True)
    assert {row["device_id"] for row in first["results"]} == {device_a.pk}


def test_listing_check_ins_needs_a_device(reader_a):
    response = reader_a.get(URL)

    assert response.status_code == 400
    assert "device" in response.json()


def test_a_page_of_check_ins_is_a_fixed_number_of_queries(reader_a, device_a, django_assert_max_num_queries):
    for hours in range(60):
        CheckInFactory(device=device_a, reported_at=NOW - dt.timedelta(hours=hours))

    # Token lookup, device lookup, the page.
    with django_assert_max_num_queries(4):
        response = reader_a.get(URL, {"device": device_a.pk})

    assert len(response.json()["results"]) == 50


def test_a_report_dated_before_year_one_in_utc_is_a_400_naming_reported_at(reporter_a, device_a):
    body = {"serial": device_a.serial, "reported_at": "0001-01-01T00:00:00+23:59"}

    response = reporter_a.post(URL, body, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["reported_at"]
