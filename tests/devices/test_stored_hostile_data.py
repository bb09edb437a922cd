"""Store only what every page can show, and survive what is stored already (issue #15, item 3): JSON nested
deeper than any report is refused at the edge with a 400 naming the limit, and rows written before that cap
(a deep payload, a check-in dated year 1) leave every page of the device answering."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from django.utils import timezone

from common.api.parsers import MAX_JSON_DEPTH
from devices.models import CheckIn
from tests.api_personas import *  # noqa: F403
from tests.factories import CheckInFactory, DeviceFactory

pytestmark = pytest.mark.django_db


def nested(depth: int) -> list:
    outer = inner = []
    for _ in range(depth - 1):
        inner.append([])
        inner = inner[0]
    return outer


def report(extra: object) -> dict:
    return {
        "serial": "R58N12ABCDE",
        "reported_at": timezone.now().isoformat(),
        "security_patch_level": "2026-11-01",
        "agent_version": "3.2.1",
        "extra": extra,
    }


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 920, 5000])
@pytest.mark.parametrize("url", ["/api/v1/checkins/", "/api/v1/ingest/amapi/", "/api/v1/ingest/headwind/"])
def test_json_nested_deeper_than_the_limit_is_a_400_naming_it(mdm_a, url, depth):
    # Written by hand: Python's own encoder cannot nest 5,000 deep either.
    body = json.dumps(report("DEEP")).replace('"DEEP"', "[" * depth + "]" * depth)
    response = mdm_a.post(url, body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/json"
    detail = response.json()["detail"]
    assert "Malformed JSON" in detail and ("32 levels" in detail or "nested too deeply" in detail)
    assert not CheckIn.objects.exists()


def test_a_pubsub_envelope_hiding_deep_json_is_refused_too(mdm_a):
    data = base64.b64encode(json.dumps({"name": "enterprises/e/devices/d", "x": nested(920)}).encode()).decode()
    envelope = {"message": {"data": data, "messageId": "1", "attributes": {"notificationType": "STATUS_REPORT"}}}
    response = mdm_a.post("/api/v1/ingest/amapi/", envelope, format="json")
    assert response.status_code < 500 and response["Content-Type"] == "application/json"
    assert not CheckIn.objects.exists()


def test_a_report_as_deep_as_the_limit_is_stored(mdm_a):
    response = mdm_a.post("/api/v1/checkins/", report(nested(MAX_JSON_DEPTH - 1)), format="json")
    assert response.status_code == 201, response.content


def test_a_device_whose_stored_payload_is_900_deep_still_has_every_page(admin_client):
    # Written before the edge capped depth: inserted directly, as an old row is.
    check_in = CheckInFactory(raw={"x": nested(900)})
    device_id = check_in.device_id
    for url in (
        f"/admin/devices/device/{device_id}/change/",
        f"/admin/devices/device/{device_id}/timeline/",
        f"/admin/devices/checkin/{check_in.pk}/change/",
        f"/admin/devices/checkin/?device__id__exact={device_id}",
        f"/admin/devices/checkin/export.xlsx?device__id__exact={device_id}",
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url


def test_a_device_whose_only_check_in_is_dated_year_1_still_has_its_timeline(admin_client):
    year_one = dt.datetime(1, 1, 1, 0, 30, tzinfo=dt.UTC)
    device = DeviceFactory(last_check_in_at=year_one)
    CheckInFactory(device=device, reported_at=year_one)
    assert admin_client.get(f"/admin/devices/device/{device.pk}/timeline/").status_code == 200
    assert (
        admin_client.get(f"/admin/devices/device/{device.pk}/timeline/?before=0001-01-01T01:00:00Z").status_code == 200
    )
