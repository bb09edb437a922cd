"""Exports of a device's history: its check-ins and its status changes as CSV and XLSX, from the device's page and
timeline, and the status-change list as filtered; scoped to the user's organisations like the lists."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from tests.devices.test_export import _export_queries, read_csv, read_xlsx
from tests.factories import CheckInFactory, DeviceFactory, StatusChangeFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def device_a(org_a):
    device = DeviceFactory(organisation=org_a, serial="A-1")
    for day in range(3):
        CheckInFactory(
            device=device,
            reported_at=T0 + dt.timedelta(days=day),
            build_number=f"UQ1A.24010{day}.004",
            security_patch_level=dt.date(2026, 1, 5),
            battery_level_pct=50 + day,
            battery_cycle_count=300,
        )
    StatusChangeFactory(device=device, from_status="up_to_date", to_status="behind", changed_at=T0, reason="grace")
    StatusChangeFactory(device=device, from_status="behind", to_status="critical", changed_at=T0 + dt.timedelta(days=9))
    return device


@pytest.fixture
def other_device_a(org_a):
    device = DeviceFactory(organisation=org_a, serial="A-2")
    CheckInFactory(device=device, reported_at=T0)
    StatusChangeFactory(device=device, from_status="up_to_date", to_status="silent", changed_at=T0)
    return device


HISTORY_EXPORTS = (
    "admin:devices_checkin_export",
    "admin:devices_checkin_export_xlsx",
    "admin:devices_statuschange_export",
    "admin:devices_statuschange_export_xlsx",
)


def of_device(device) -> dict:
    return {"device__id__exact": device.pk}


def test_the_check_ins_of_a_device_as_csv_newest_first(client, viewer_a, device_a, other_device_a):
    client.force_login(viewer_a)
    response = client.get(reverse("admin:devices_checkin_export"), of_device(device_a))
    assert response["Content-Disposition"].startswith('attachment; filename="fleetpatch-check-ins-')
    rows = read_csv(response)
    assert [(r["serial number"], r["build number"], r["reported at"]) for r in rows] == [
        ("A-1", "UQ1A.240102.004", "2026-03-03T08:00:00+00:00"),
        ("A-1", "UQ1A.240101.004", "2026-03-02T08:00:00+00:00"),
        ("A-1", "UQ1A.240100.004", "2026-03-01T08:00:00+00:00"),
    ]
    assert (rows[0]["security patch level"], rows[0]["battery level (%)"], rows[0]["source"]) == (
        "2026-01-05",
        "52",
        "api",
    )


def test_the_check_ins_of_a_device_as_xlsx_with_dates_and_numbers(client, manager_a, device_a, other_device_a):
    client.force_login(manager_a)
    headers, rows = read_xlsx(client.get(reverse("admin:devices_checkin_export_xlsx"), of_device(device_a)))
    assert len(rows) == 3
    newest = dict(zip(headers, rows[0], strict=True))
    assert newest["reported at"] == dt.datetime(2026, 3, 3, 8, 0)
    assert newest["security patch level"] == dt.datetime(2026, 1, 5)
    assert (newest["battery level (%)"], newest["battery charge cycles"]) == (52, 300)
    assert newest["serial number"] == "A-1"


def test_the_status_history_of_a_device_as_csv_and_xlsx(client, manager_a, device_a, other_device_a):
    client.force_login(manager_a)
    rows = read_csv(client.get(reverse("admin:devices_statuschange_export"), of_device(device_a)))
    assert [(r["changed at"], r["from"], r["to"], r["reason"]) for r in rows] == [
        ("2026-03-10T08:00:00+00:00", "behind", "critical", ""),
        ("2026-03-01T08:00:00+00:00", "up_to_date", "behind", "grace"),
    ]
    headers, xlsx_rows = read_xlsx(client.get(reverse("admin:devices_statuschange_export_xlsx"), of_device(device_a)))
    assert [dict(zip(headers, row, strict=True))["changed at"] for row in xlsx_rows] == [
        dt.datetime(2026, 3, 10, 8, 0),
        dt.datetime(2026, 3, 1, 8, 0),
    ]


def test_the_status_history_list_exports_as_filtered(client, manager_a, device_a, other_device_a, org_b):
    StatusChangeFactory(device=DeviceFactory(organisation=org_b, serial="B-1"), to_status="silent")
    client.force_login(manager_a)
    rows = read_csv(client.get(reverse("admin:devices_statuschange_export"), {"to_status__exact": "silent"}))
    assert [(r["serial number"], r["organisation"]) for r in rows] == [("A-2", "Ministère A")]
    page = client.get(reverse("admin:devices_statuschange_changelist"), {"to_status__exact": "silent"}).content
    assert f'{reverse("admin:devices_statuschange_export_xlsx")}?to_status__exact=silent"'.encode() in page


def test_a_manager_of_b_gets_nothing_of_a_devices_history_by_crafting_its_id(client, manager_b, device_a):
    client.force_login(manager_b)
    for url in HISTORY_EXPORTS:
        read = read_xlsx_rows if url.endswith("xlsx") else read_csv
        for crafted in (of_device(device_a), {"q": "A-1"}):
            response = client.get(reverse(url), crafted)
            assert response.status_code == 200
            assert read(response) == [], (url, crafted)


def read_xlsx_rows(response) -> list:
    return read_xlsx(response)[1]


def test_the_device_page_and_timeline_link_to_the_devices_history_exports(client, manager_a, device_a):
    client.force_login(manager_a)
    expected = [f'{reverse(name)}?device__id__exact={device_a.pk}"' for name in HISTORY_EXPORTS]
    for page in ("admin:devices_device_change", "admin:devices_device_timeline"):
        content = client.get(reverse(page, args=[device_a.pk])).content.decode()
        assert all(link in content for link in expected), page


def test_history_export_query_count_does_not_grow_with_the_history(
    client, manager_a, device_a, django_assert_max_num_queries
):
    client.force_login(manager_a)
    few = {url: _export_queries(client, url) for url in HISTORY_EXPORTS}
    for day in range(3, 40):
        CheckInFactory(device=device_a, reported_at=T0 + dt.timedelta(days=day))
        StatusChangeFactory(
            device=device_a,
            from_status="behind" if day % 2 else "critical",
            to_status="critical" if day % 2 else "behind",
            changed_at=T0 + dt.timedelta(days=day),
        )
    for url in HISTORY_EXPORTS:
        with django_assert_max_num_queries(few[url]):
            response = client.get(reverse(url))
            b"".join(response.streaming_content)
