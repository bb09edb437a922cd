"""The device timeline: every kind of event, newest first, paginated without gaps or repeats."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from devices.selectors import device_timeline
from tests.factories import BatteryEventFactory, CheckInFactory, DeviceFactory, StatusChangeFactory

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)


def at(hours: int) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


@pytest.fixture
def device():
    device = DeviceFactory()
    CheckInFactory(device=device, reported_at=at(0), build_number="B1")
    CheckInFactory(device=device, reported_at=at(1), build_number="B1")
    CheckInFactory(device=device, reported_at=at(2), build_number="B2")
    BatteryEventFactory(device=device, occurred_at=at(3), reason="swollen")
    StatusChangeFactory(device=device, changed_at=at(4), from_status="behind", to_status="up_to_date")
    return device


def test_the_timeline_merges_every_source_newest_first_with_build_changes(device):
    page = device_timeline(device=device)
    assert [(e.kind, e.at) for e in page.events] == [
        ("status", at(4)),
        ("battery", at(3)),
        ("check_in", at(2)),
        ("build_change", at(2)),
        ("check_in", at(1)),
        ("check_in", at(0)),
    ]
    assert "B1 → B2" in page.events[3].detail
    assert page.older_than is None


def test_pages_neither_repeat_nor_skip_events(device):
    seen, before = [], None
    for _ in range(10):
        page = device_timeline(device=device, before=before, limit=2)
        seen.extend((e.kind, e.at) for e in page.events)
        if page.older_than is None:
            break
        before = page.older_than
    assert sorted(seen) == sorted((e.kind, e.at) for e in device_timeline(device=device).events)
    assert len(seen) == len(set(seen))


def test_a_build_change_at_a_page_boundary_is_still_detected(device):
    page = device_timeline(device=device, before=at(2) + dt.timedelta(seconds=1), limit=1)
    assert {e.kind for e in page.events} == {"check_in", "build_change"}


def test_the_timeline_page_renders_for_a_manager_and_is_404_for_another_organisation(
    client, manager_a, manager_b, org_a
):
    device = DeviceFactory(organisation=org_a, battery_health_pct=90)
    CheckInFactory(device=device, reported_at=at(0), battery_health_pct=95)
    CheckInFactory(device=device, reported_at=at(5), battery_health_pct=90)
    url = reverse("admin:devices_device_timeline", args=[device.pk])
    client.force_login(manager_a)
    response = client.get(url)
    assert response.status_code == 200
    assert b"Battery health, last reports" in response.content
    assert client.get(url, {"before": "2026-02-30T00:00:00"}).status_code == 200  # nonsense cursor: first page
    client.force_login(manager_b)
    assert client.get(url).status_code == 404


def test_the_timeline_is_a_fixed_number_of_queries(django_assert_max_num_queries):
    device = DeviceFactory()
    for hour in range(200):
        CheckInFactory(device=device, reported_at=at(hour))
    with django_assert_max_num_queries(4):
        page = device_timeline(device=device)
    assert len(page.events) == 50


def test_the_device_page_is_a_fixed_number_of_queries_whatever_its_history(client, manager_a, org_a):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    device = DeviceFactory(organisation=org_a)
    url = reverse("admin:devices_device_change", args=[device.pk])
    client.force_login(manager_a)
    CheckInFactory(device=device, reported_at=at(0))
    client.get(url)  # warm Django's per-process caches (content types)
    with CaptureQueriesContext(connection) as short:
        assert client.get(url).status_code == 200
    for hour in range(1, 60):
        CheckInFactory(device=device, reported_at=at(hour))
        StatusChangeFactory(device=device, changed_at=at(hour), from_status="behind", to_status="up_to_date")
    with CaptureQueriesContext(connection) as long:
        assert client.get(url).status_code == 200
    assert len(long.captured_queries) == len(short.captured_queries)
