"""Every page and export survives what is already stored (issue #15, item 3): rows written before the edge
refused them (inserted here directly, bypassing validation) hold control characters in every text column a
page shows, strings as long as their column, and dates at the calendar's ends (year 1, year 9999). The admin's
lists, pages, timeline and dashboard, the API's lists and details, the CSV and XLSX exports and the digest
email all answer."""

from __future__ import annotations

import datetime as dt
import io
import warnings

import openpyxl
import pytest
from django.urls import reverse
from django.utils import timezone, translation

from alerts import digests
from alerts.models import AlertSubscription
from devices.models import BatteryEvent, CheckIn, Device, StatusChange
from fleet.models import Fleet
from tests.api_personas import *  # noqa: F403
from tests.factories import (
    BatteryEventFactory,
    CheckInFactory,
    DeviceFactory,
    DeviceModelFactory,
    FleetFactory,
    StatusChangeFactory,
)
from updates.models import DeviceModel

pytestmark = pytest.mark.django_db

# No NUL: PostgreSQL cannot store it in text at all, so no old row can hold one.
JUNK = "\x1b[31m\x01\x07\x7f\x85\ufffe\u202e"
YEAR_1 = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
YEAR_9999 = dt.datetime.max.replace(tzinfo=dt.UTC)


def junk(length: int) -> str:
    return (JUNK * (length // len(JUNK) + 1))[:length]


def filled(model: type, *fields: str) -> dict[str, str]:
    """Junk as long as each column holds (10,000 characters in a text column without a limit)."""
    return {field: junk(model._meta.get_field(field).max_length or 10_000) for field in fields}


@pytest.fixture(params=["year 1", "year 9999"])
def hostile_device(request, org_a):
    """A device of org A whose every shown text is junk and whose every date is at one end of the calendar."""
    moment = YEAR_1 if request.param == "year 1" else YEAR_9999
    fleet = FleetFactory(organisation=org_a, **filled(Fleet, "name"))
    model = DeviceModelFactory(**filled(DeviceModel, "name"))
    device = DeviceFactory(organisation=org_a, fleet=fleet, model=model, compliance_status="behind")
    Device.objects.filter(pk=device.pk).update(
        **filled(
            Device,
            "serial",
            "asset_tag",
            "assignee",
            "reported_model",
            "reported_build_number",
            "android_version",
            "identity_conflict",
        ),
        enrolled_at=moment,
        last_check_in_at=moment,
        status_since=moment,
        behind_since=moment,
        management_state_since=moment,
        security_patch_level=moment.date(),
        battery_installed_on=moment.date(),
    )
    CheckInFactory(
        device=device,
        reported_at=moment,
        **filled(CheckIn, "build_number", "android_version", "agent_version"),
        security_patch_level=moment.date(),
        raw={"note": junk(100_000), "deep": [[[[junk(10)]]]]},
    )
    BatteryEventFactory(
        device=device, occurred_at=moment, **filled(BatteryEvent, "part_serial", "reason", "performed_by")
    )
    StatusChangeFactory(device=device, changed_at=moment, to_status="behind")
    return Device.objects.get(pk=device.pk)


def test_the_admin_pages_of_a_device_holding_junk_and_extreme_dates_answer(client, manager_a, hostile_device):
    client.force_login(manager_a)
    check_in = CheckIn.objects.get(device=hostile_device)
    event = BatteryEvent.objects.get(device=hostile_device)
    change = StatusChange.objects.get(device=hostile_device)
    for url in (
        reverse("admin:index"),
        reverse("admin:devices_device_changelist"),
        reverse("admin:devices_device_changelist") + "?o=-7",
        reverse("admin:devices_device_change", args=[hostile_device.pk]),
        reverse("admin:devices_device_timeline", args=[hostile_device.pk]),
        reverse("admin:devices_checkin_changelist"),
        reverse("admin:devices_checkin_change", args=[check_in.pk]),
        reverse("admin:devices_statuschange_changelist"),
        reverse("admin:devices_statuschange_change", args=[change.pk]),
        reverse("admin:devices_batteryevent_changelist"),
        reverse("admin:devices_batteryevent_change", args=[event.pk]),
        reverse("admin:fleet_fleet_changelist"),
        reverse("admin:updates_devicemodel_changelist"),
    ):
        response = client.get(url)
        assert response.status_code == 200, url


@pytest.mark.parametrize("table", ["device", "checkin", "statuschange"])
def test_the_csv_and_xlsx_exports_of_such_rows_answer_and_the_xlsx_opens(client, manager_a, hostile_device, table):
    client.force_login(manager_a)
    csv_response = client.get(reverse(f"admin:devices_{table}_export"))
    assert csv_response.status_code == 200
    assert b"".join(csv_response.streaming_content)
    xlsx_response = client.get(reverse(f"admin:devices_{table}_export_xlsx"))
    assert xlsx_response.status_code == 200
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # openpyxl warns of a date cell outside Excel's calendar
        sheet = openpyxl.load_workbook(io.BytesIO(b"".join(xlsx_response.streaming_content))).active
    rows = list(sheet.iter_rows(values_only=True))
    assert len(rows) == 2  # the header and the one row
    # Dates Excel cannot hold are written as ISO text; the junk text without what XML cannot hold.
    year = "0001-01-01" if hostile_device.enrolled_at.year == 1 else "9999-12-31"
    assert any(isinstance(value, str) and value.startswith(year) for value in rows[1]), rows[1]


def test_the_api_lists_and_details_of_such_rows_answer(mdm_a, hostile_device):
    for url in (
        "/api/v1/devices/",
        f"/api/v1/devices/{hostile_device.pk}/",
        "/api/v1/battery-events/",
        "/api/v1/fleets/",
        "/api/v1/compliance/summary/",
    ):
        response = mdm_a.get(url)
        assert response.status_code == 200, (url, response.content[:300])
        assert response.json()
    detail = mdm_a.get(f"/api/v1/devices/{hostile_device.pk}/").json()
    # JSON escapes what it must: the text comes back exactly as stored.
    assert detail["asset_tag"] == hostile_device.asset_tag


def test_the_digest_of_such_a_device_is_built_and_rendered(org_a, hostile_device):
    now = timezone.now()
    StatusChangeFactory(device=hostile_device, changed_at=now - dt.timedelta(hours=1), to_status="behind")
    subscription = AlertSubscription(
        organisation=org_a,
        name="Morning",
        time_zone="Europe/Paris",
        send_at=dt.time(8),
        extra_recipients="ops@example.org",
        created_at=now - dt.timedelta(days=30),
    )
    subscription.save()
    with translation.override("fr"):
        digest = digests.build_digest(subscription, window_start=now - dt.timedelta(days=1), window_end=now)
        rendered = digests.render_digest(digest)
    assert hostile_device.serial[:8] in rendered.text
    assert rendered.html
