"""Battery events: an MDM records replacements and health readings for its own organisation's devices."""

from __future__ import annotations

import base64
import datetime as dt
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from devices.models import BatteryEvent, Device
from tests.factories import BatteryEventFactory, DeviceFactory


def results(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


@pytest.mark.parametrize("ref", ["id", "serial"])
def test_a_replacement_resets_the_devices_battery(mdm_a, device_a, ref):
    Device.objects.filter(pk=device_a.pk).update(battery_health_pct=61, battery_cycle_count=900)
    occurred = timezone.now() - dt.timedelta(hours=1)
    response = mdm_a.post(
        "/api/v1/battery-events/",
        {
            "device": device_a.pk if ref == "id" else device_a.serial,
            "kind": "replacement",
            "occurred_at": occurred.isoformat(),
            "part_serial": "BAT-1",
            "performed_by": "Workshop 3",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["device"] == {"id": device_a.pk, "serial": "A-0001"}
    device_a.refresh_from_db()
    assert (device_a.battery_installed_on, device_a.battery_health_pct, device_a.battery_cycle_count) == (
        occurred.date(),
        None,
        0,
    )


def test_a_health_reading_is_recorded_and_updates_the_device(mdm_a, device_a):
    response = mdm_a.post(
        "/api/v1/battery-events/",
        {"device": device_a.pk, "kind": "reading", "occurred_at": timezone.now().isoformat(), "health_pct": 72},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert BatteryEvent.objects.get(device=device_a).health_pct == 72
    device_a.refresh_from_db()
    assert device_a.battery_health_pct == 72


@pytest.mark.parametrize("ref", ["id", "serial"])
def test_a_client_of_b_cannot_record_a_battery_event_on_a_device_of_a(mdm_b, device_a, ref):
    response = mdm_b.post(
        "/api/v1/battery-events/",
        {"device": device_a.pk if ref == "id" else device_a.serial, "occurred_at": timezone.now().isoformat()},
        format="json",
    )
    assert response.status_code == 400
    assert "device" in response.json()
    assert not BatteryEvent.objects.exists()


def test_battery_events_of_a_never_appear_in_the_list_of_b(mdm_b, device_a, device_b):
    BatteryEventFactory(device=device_a)
    mine = BatteryEventFactory(device=device_b)
    assert [e["id"] for e in results(mdm_b.get("/api/v1/battery-events/"))] == [mine.pk]
    assert results(mdm_b.get(f"/api/v1/battery-events/?device_id={device_a.pk}")) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"occurred_at": "2024-02-30T10:00:00Z"}, "occurred_at"),
        ({"occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at"),
        ({"kind": "explosion"}, "kind"),
        ({"kind": "reading", "health_pct": 101}, "health_pct"),
        ({"kind": "replacement", "health_pct": 50}, "health_pct"),
        ({"device": None}, "device"),
        ({"device": True}, "device"),
        ({"device": 10**30}, "device"),
    ],
)
def test_invalid_battery_events_name_the_field(mdm_a, device_a, body, field):
    payload = {"device": device_a.pk, "occurred_at": timezone.now().isoformat(), **body}
    response = mdm_a.post("/api/v1/battery-events/", payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_an_unknown_device_is_named_with_the_value_given(mdm_a, device_a):
    payload = {"device": "NO-SUCH-SERIAL", "occurred_at": timezone.now().isoformat()}
    response = mdm_a.post("/api/v1/battery-events/", payload, format="json")
    assert response.status_code == 400
    assert response.json() == {"device": ["No device of your organisation matches 'NO-SUCH-SERIAL'."]}


@pytest.mark.parametrize(
    "query",
    ["device_id={device}", "serial=A-0001", "kind=reading", "occurred_after={after}", "occurred_before={before}"],
)
def test_each_battery_event_filter_selects_only_matching_events(mdm_a, org_a, device_a, query):
    now = timezone.now()
    match = BatteryEventFactory(device=device_a, kind="reading", occurred_at=now - dt.timedelta(days=10))
    # The other event is outside whichever window the query opens: older for "after", newer otherwise.
    other_at = now - dt.timedelta(days=30) if query.startswith("occurred_after") else now
    BatteryEventFactory(device=DeviceFactory(organisation=org_a), kind="replacement", occurred_at=other_at)
    url = "/api/v1/battery-events/?" + query.format(
        device=device_a.pk,
        after=(now - dt.timedelta(days=20)).isoformat().replace("+00:00", "Z"),
        before=(now - dt.timedelta(days=5)).isoformat().replace("+00:00", "Z"),
    )
    assert [e["id"] for e in results(mdm_a.get(url))] == [match.pk]


@pytest.mark.parametrize("position", ["2072-11-29 19:04:10-17:20", "0001-01-01 00:00:00+01:00", "not a time"])
def test_a_tampered_cursor_on_a_datetime_ordering_never_gives_a_500(mdm_a, device_a, position):
    # PostgreSQL refuses UTC offsets beyond ±15:59 (a 500): the position is compared in UTC, or is a bad cursor.
    for _ in range(3):
        BatteryEventFactory(device=device_a)
    cursor = base64.b64encode(urlencode({"p": position, "r": "0"}).encode()).decode()

    response = mdm_a.get("/api/v1/battery-events/", {"ordering": "occurred_at", "cursor": cursor})

    assert response.status_code in (200, 404), response.content


def test_following_next_on_a_datetime_ordering_still_pages_through_every_event(mdm_a, device_a):
    for _ in range(5):
        BatteryEventFactory(device=device_a)
    seen, url = [], "/api/v1/battery-events/?ordering=-occurred_at&page_size=2"
    while url:
        body = mdm_a.get(url).json()
        seen += [row["id"] for row in body["results"]]
        url = body["next"]

    assert sorted(seen) == sorted(BatteryEvent.objects.values_list("pk", flat=True))
    assert len(seen) == 5
