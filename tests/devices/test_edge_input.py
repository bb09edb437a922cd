"""Store only what every page can show (issue #15, item 3): control characters and dates nobody can mean are
refused at every way in (the API, check-ins of every format, imports, the catalogue CSV, the admin), each with
an error naming the field and the reason; a secondary field of a report is dropped with a warning instead."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re

import openpyxl
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from common.dates import validate_date_range
from common.text import clean_text, forbidden_character
from devices.choices import BatteryEventKind
from devices.imports.services import battery_replacements_import, devices_import
from devices.models import BatteryEvent, CheckIn, Device, PubSubMessage
from fleet.models import Fleet
from tests.api_personas import *  # noqa: F403
from tests.factories import DeviceFactory, DeviceModelFactory, FleetFactory
from updates.catalogue import read_csv
from updates.models import DeviceModel, ModelAlias

pytestmark = pytest.mark.django_db

HOSTILE = ["\x1b[31m", "\x01", "\x00", "\x7f", "\x85", "\ufffe", "\U0010ffff", "\x0b", "\x0c"]


# --- The rule ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("character", HOSTILE + ["\ud800"])
def test_control_characters_noncharacters_and_lone_surrogates_are_refused_naming_the_character(character):
    with pytest.raises(ValidationError) as caught:
        clean_text(f"AT-{character}1")
    (message,) = caught.value.messages
    assert re.search(rf"U\+{ord(character[0]):04X} \(at position 4\)", message), message


@pytest.mark.parametrize(
    ("text", "stored"),
    [("a\tb\nc", "a\tb\nc"), ("line\r\nnext", "line\nnext"), ("old\rmac", "old\nmac"), ("N° série ✓ 😀", None)],
)
def test_tab_newline_and_printable_unicode_are_kept_and_returns_become_newlines(text, stored):
    assert clean_text(text) == (stored or text)
    assert forbidden_character(text) is None


@pytest.mark.parametrize(
    ("value", "bound"),
    [(dt.date(1, 1, 1), "2000-01-01"), (dt.date(9999, 12, 31), "2099-12-31"), (dt.date(1999, 12, 31), "2000-01-01")],
)
def test_dates_outside_the_sane_range_are_refused_naming_the_bound(value, bound):
    with pytest.raises(ValidationError, match=bound):
        validate_date_range(value)
    validate_date_range(dt.date(2000, 1, 1))
    validate_date_range(dt.datetime(2099, 12, 31, 23, 59, tzinfo=dt.UTC))


# --- The API -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("character", HOSTILE[:2] + ["\x85"])
def test_an_enrolment_or_an_update_with_a_control_character_is_a_400_on_that_field(mdm_a, org_a, character):
    response = mdm_a.post("/api/v1/devices/", {"serial": "EDGE-1", "asset_tag": f"A{character}T"}, format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["asset_tag"]
    assert "U+" in response.json()["asset_tag"][0]
    assert not Device.objects.filter(serial="EDGE-1").exists()

    device = DeviceFactory(organisation=org_a, assignee="Ana")
    response = mdm_a.patch(f"/api/v1/devices/{device.pk}/", {"assignee": f"Bo{character}b"}, format="json")
    assert response.status_code == 400 and list(response.json()) == ["assignee"]
    device.refresh_from_db()
    assert device.assignee == "Ana"


def test_a_return_in_api_text_is_stored_as_a_newline(mdm_a, org_a):
    device = DeviceFactory(organisation=org_a)
    response = mdm_a.patch(f"/api/v1/devices/{device.pk}/", {"assignee": "Ana\r\nBo"}, format="json")
    assert response.status_code == 200, response.content
    device.refresh_from_db()
    assert device.assignee == "Ana\nBo"


@pytest.mark.parametrize(("when", "bound"), [("0001-01-01T00:00:00Z", "2000-01-01"), ("1970-01-01T00:00:00Z", "2000")])
def test_a_battery_event_dated_year_1_or_1970_is_a_400_naming_the_bound(mdm_a, org_a, when, bound):
    device = DeviceFactory(organisation=org_a)
    response = mdm_a.post(
        "/api/v1/battery-events/", {"device": device.pk, "occurred_at": when, "reason": "x"}, format="json"
    )
    assert response.status_code == 400, response.content
    assert bound in response.json()["occurred_at"][0]
    assert not BatteryEvent.objects.exists()


def test_a_private_build_with_a_control_character_or_year_9999_is_refused(mdm_a, phone_model):
    body = {"model": phone_model.pk, "build_number": "B\x01.1", "security_patch_level": "2024-01-05"}
    response = mdm_a.post("/api/v1/builds/", body, format="json")
    assert response.status_code == 400 and list(response.json()) == ["build_number"]
    body = {**body, "build_number": "B.1", "security_patch_level": "1970-01-01", "released_at": "0001-01-01T00:00Z"}
    response = mdm_a.post("/api/v1/builds/", body, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"security_patch_level", "released_at"}, response.json()


# --- Check-ins ---------------------------------------------------------------------------------------
def native(**fields: object) -> dict:
    return {"serial": "EDGE-CI-1", "reported_at": timezone.now().isoformat(), "build_number": "B.1", **fields}


@pytest.mark.parametrize("field", ["serial", "build_number", "android_version"])
def test_a_report_with_a_control_character_in_what_it_is_about_is_refused_naming_the_field(mdm_a, field):
    response = mdm_a.post("/api/v1/checkins/", native(**{field: "X\x1bY"}), format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()["errors"]) == [field]
    assert not CheckIn.objects.exists()


@pytest.mark.parametrize("field", ["agent_version", "model"])
def test_a_control_character_in_a_secondary_field_drops_it_with_a_warning(mdm_a, field):
    response = mdm_a.post("/api/v1/checkins/", native(**{field: "3.2\x01"}), format="json")
    assert response.status_code == 201, response.content
    assert "U+0001" in response.json()["warnings"][field][0]
    assert CheckIn.objects.get().agent_version == ""


def test_one_bad_report_in_a_batch_never_drops_the_good_ones(mdm_a):
    batch = [native(serial="GOOD-1"), native(serial="BAD\x1b"), native(serial="GOOD-2", agent_version="\x07")]
    response = mdm_a.post("/api/v1/checkins/", batch, format="json")
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == ["created", "error", "created"]
    assert CheckIn.objects.count() == 2


@pytest.mark.parametrize(
    ("fields", "field", "bound"),
    [
        ({"reported_at": "0001-01-01T00:00:00Z"}, "reported_at", "2000-01-01"),
        ({"reported_at": "1970-01-01T00:00:00+00:00"}, "reported_at", "2000-01-01"),
        ({"security_patch_level": "0001-01-01"}, "security_patch_level", "2000-01-01"),
        ({"security_patch_level": "2009-12-01"}, "security_patch_level", "2010-01-01"),
    ],
)
def test_a_report_dated_before_the_range_is_refused_naming_the_bound(mdm_a, fields, field, bound):
    response = mdm_a.post("/api/v1/checkins/", native(**fields), format="json")
    assert response.status_code == 400, response.content
    assert bound in " ".join(response.json()["errors"][field])


def test_an_amapi_device_with_junk_in_its_model_or_name_keeps_its_report(mdm_a):
    device = {
        "name": "enterprises/e/devices/\x1bd1",
        "hardwareInfo": {"serialNumber": "EDGE-AM-1", "model": "TC\x0021", "brand": "Zebra"},
        "softwareInfo": {"androidBuildNumber": "B.1", "androidVersion": "13"},
        "lastStatusReportTime": timezone.now().isoformat(),
    }
    response = mdm_a.post("/api/v1/ingest/amapi/", device, format="json")
    # The JSON parser refuses NUL anywhere in a body; an escape character is dropped with a warning.
    assert response.status_code == 400
    device["hardwareInfo"]["model"] = "TC\x1b21"
    response = mdm_a.post("/api/v1/ingest/amapi/", device, format="json")
    assert response.status_code == 201, response.content
    assert set(response.json()["warnings"]) == {"name", "hardwareInfo.model"}
    stored = Device.objects.get(serial="EDGE-AM-1")
    assert stored.reported_model == ""


def test_a_headwind_report_with_an_agent_version_holding_a_control_character_is_stored_without_it(mdm_a):
    info = {"deviceId": "hw-1", "serial": "EDGE-HW-1", "launcherVersion": "6.\x1b1", "androidVersion": "12"}
    response = mdm_a.post("/api/v1/ingest/headwind/", info, format="json")
    assert response.status_code == 201, response.content
    assert list(response.json()["warnings"]) == ["launcherVersion"]
    assert CheckIn.objects.get().agent_version == ""


# --- Imports -----------------------------------------------------------------------------------------
def test_an_imported_cell_with_a_control_character_fails_its_row_naming_the_column(org_a):
    data = "serial,asset tag,assignee\nGOOD-1,AT-1,Ana\nBAD-1,AT\x1b2,Bo\nBAD-2,AT-3,\x01\n"
    result = devices_import(organisation=org_a, data=data.encode())
    failures = {row.serial: row.message for row in result.failures}
    assert set(failures) == {"BAD-1", "BAD-2"}
    assert failures["BAD-1"].startswith("asset tag:") and "U+001B" in failures["BAD-1"]
    assert failures["BAD-2"].startswith("assignee:") and "U+0001" in failures["BAD-2"]
    assert Device.objects.filter(organisation=org_a, serial="GOOD-1").exists()


def test_an_xlsx_cell_with_a_control_character_or_a_year_1_date_fails_its_row(org_a, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["serial", "asset tag", "security patch level", "battery installed on"])
    sheet.append(["XL-GOOD", "AT-1", "2024-01-05", "2023-05-01"])
    sheet.append(["XL-TAB", "AT\t2", "2024-01-05", None])
    sheet.append(["XL-OLD", "AT-3", "2009-01-01", None])
    sheet.append(["XL-YEAR1", "AT-4", None, "0001-01-01"])
    path = tmp_path / "devices.xlsx"
    book.save(path)
    result = devices_import(organisation=org_a, data=path.read_bytes())
    failures = {row.serial: row.message for row in result.failures}
    assert set(failures) == {"XL-OLD", "XL-YEAR1"}, failures
    assert "2010-01-01" in failures["XL-OLD"]
    assert "2000-01-01" in failures["XL-YEAR1"]
    assert Device.objects.get(organisation=org_a, serial="XL-TAB").asset_tag == "AT\t2"


def test_a_battery_import_row_with_a_control_character_names_its_column(org_a):
    DeviceFactory(organisation=org_a, serial="BAT-1")
    data = "serial,replaced on,reason\nBAT-1,2024-02-01,Swollen\x1b\n"
    result = battery_replacements_import(organisation=org_a, data=data.encode())
    (failure,) = result.failures
    assert "U+001B" in failure.message and failure.message.startswith("reason")


def test_the_catalogue_csv_refuses_a_control_character_or_a_year_1_date_naming_the_line_and_column():
    catalogue = read_csv(
        "manufacturer,model,security_support_until\nZebra,TC21,2027-01-01\nZebra,TC\x1b22,\nZebra,TC26,0001-01-01\n"
    )
    assert [m.name for m in catalogue.models] == ["TC21"]
    assert any("line 3: model:" in e and "U+001B" in e for e in catalogue.errors), catalogue.errors
    assert any("line 4: security_support_until:" in e and "2000-01-01" in e for e in catalogue.errors)


# --- The admin ---------------------------------------------------------------------------------------
def test_an_admin_form_with_a_control_character_or_a_year_1_date_is_a_form_error(client, manager_a, org_a):
    device = DeviceFactory(organisation=org_a)
    client.force_login(manager_a)
    response = client.post(
        reverse("admin:devices_batteryevent_add"),
        {
            "device": device.pk,
            "kind": BatteryEventKind.REPLACEMENT,
            "occurred_at_0": "0001-01-01",
            "occurred_at_1": "09:30:00",
            "part_serial": "BAT\x1b-NEW",
            "reason": "Swollen",
            "performed_by": "Atelier",
        },
    )
    assert response.status_code == 200  # the form again, with its errors
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"occurred_at", "part_serial"}, errors
    assert "U+001B" in errors["part_serial"][0] and "2000-01-01" in errors["occurred_at"][0]
    assert not BatteryEvent.objects.exists()


def test_an_admin_change_with_a_control_character_is_refused_on_its_field(client, manager_a, org_a):
    fleet = FleetFactory(organisation=org_a, name="North", slug="north")
    client.force_login(manager_a)
    url = reverse("admin:fleet_fleet_change", args=[fleet.pk])
    response = client.post(url, {"organisation": org_a.pk, "name": "No\x1brth", "slug": "north"})
    assert response.status_code == 200
    assert "name" in response.context["adminform"].form.errors
    assert Fleet.objects.get(pk=fleet.pk).name == "North"


@pytest.mark.parametrize(
    "query",
    [
        "patch_level_before=0001-01-01",
        "patch_level_before=9999-12-31",
        "last_check_in_before=0001-01-01T00:00:00%2B05:00",
        "last_check_in_before=9999-12-31T23:59:59-05:00",
    ],
)
def test_list_filters_given_dates_at_the_calendars_ends_answer_without_a_500(mdm_a, device_a, query):
    # Filters only compare: a bound would refuse nothing harmful, so the ends of the calendar are read as given
    # (or refused as invalid when they cannot be converted to UTC).
    response = mdm_a.get(f"/api/v1/devices/?{query}")
    assert response.status_code in (200, 400), response.content


def test_a_headwind_report_from_a_phone_whose_clock_was_reset_is_dated_on_receipt_with_a_warning(mdm_a):
    info = {"deviceId": "hw-2", "serial": "EDGE-HW-2", "timestamp": 0, "androidVersion": "12"}
    before = timezone.now()
    response = mdm_a.post("/api/v1/ingest/headwind/", info, format="json")
    assert response.status_code == 201, response.content
    (warning,) = response.json()["warnings"]["timestamp"]
    assert "1970-01-01 is before 2000-01-01" in warning
    assert CheckIn.objects.get().reported_at >= before - dt.timedelta(seconds=1)


@pytest.mark.parametrize("table", ["device", "checkin", "statuschange", "batteryevent"])
@pytest.mark.parametrize("query", ["q=a%00b", "asset_tag=%00", "device__serial=x%00", "%00=1"])
def test_an_admin_list_or_export_filtered_with_a_nul_character_answers_without_a_500(client, manager_a, table, query):
    # PostgreSQL refuses NUL in text outright: a filter value holding one used to reach the query.
    client.force_login(manager_a)
    response = client.get(reverse(f"admin:devices_{table}_changelist") + f"?{query}", follow=True)
    assert response.status_code == 200
    if table != "batteryevent":
        assert client.get(reverse(f"admin:devices_{table}_export") + f"?{query}").status_code in (200, 400)


def test_the_catalogue_admin_and_its_alias_inline_refuse_control_characters_and_year_9999(client, superuser):
    model = DeviceModelFactory(name="TC21", slug="tc21", launched_on=None)
    client.force_login(superuser)
    form = {
        "manufacturer": model.manufacturer_id,
        "name": "TC\x1b21",
        "slug": "tc21",
        "security_support_until": "9999-12-31",
        "os_support_until": model.os_support_until.isoformat(),
        "aliases-TOTAL_FORMS": "1",
        "aliases-INITIAL_FORMS": "0",
        "aliases-MIN_NUM_FORMS": "0",
        "aliases-MAX_NUM_FORMS": "1000",
        "aliases-0-name": "TC21\x01HC",
    }
    response = client.post(reverse("admin:updates_devicemodel_change", args=[model.pk]), form)
    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) == {"name", "security_support_until"}
    (inline,) = response.context["inline_admin_formsets"]
    assert "U+0001" in str(inline.formset.errors[0]["name"])
    assert DeviceModel.objects.get(pk=model.pk).name == "TC21"
    assert not ModelAlias.objects.exists()


def test_pubsub_metadata_holding_a_control_character_is_treated_as_absent(mdm_a):
    device = {
        "name": "enterprises/e/devices/d-edge",
        "hardwareInfo": {"serialNumber": "EDGE-PS-1"},
        "softwareInfo": {"androidBuildNumber": "B.1"},
        "lastStatusReportTime": timezone.now().isoformat(),
    }
    data = base64.b64encode(json.dumps(device).encode()).decode()
    envelope = {"message": {"data": data, "messageId": "7\x1b", "attributes": {"notificationType": "STATUS_REPORT"}}}
    response = mdm_a.post("/api/v1/ingest/amapi/", envelope, format="json")
    assert response.status_code == 201, response.content
    assert not PubSubMessage.objects.exists()
    assert CheckIn.objects.get().device.serial == "EDGE-PS-1"
