"""What the schema promises, kept by the API (found by schemathesis's positive and negative data checks,
tests/common/api/test_schemathesis.py): empty query values refused, text never coerced from numbers, list
bodies bounded as their minItems/maxItems say, unknown fields refused where the schema says so."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from devices.models import CheckIn, Device

EMPTY = "Give a value, or leave the parameter out to not filter on it."


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/v1/devices/", "patch_level_before"),
        ("/api/v1/devices/", "last_check_in_before"),
        ("/api/v1/devices/", "fleet"),
        ("/api/v1/devices/", "serial"),
        ("/api/v1/devices/", "compliance_status"),
        ("/api/v1/devices/", "waived"),
        ("/api/v1/devices/", "fleet_id"),
        ("/api/v1/devices/", "ordering"),
        ("/api/v1/devices/", "cursor"),
        ("/api/v1/models/", "security_support_until_before"),
        ("/api/v1/builds/", "released_after"),
        ("/api/v1/builds/", "channel"),
        ("/api/v1/battery-events/", "occurred_before"),
        ("/api/v1/battery-events/", "kind"),
        ("/api/v1/rejected-messages/", "received_before"),
        ("/api/v1/observed-builds/", "build_number"),
        ("/api/v1/fleets/", "name"),
        ("/api/v1/checkins/", "serial"),
    ],
)
def test_an_empty_query_value_is_a_400_naming_the_parameter_not_no_filter(mdm_a, device_a, path, parameter):
    response = mdm_a.get(f"{path}?{parameter}=")

    assert response.status_code == 400, response.content
    assert list(response.json()) == [parameter]


def test_the_empty_value_message_is_the_same_for_every_filter(mdm_a, device_a):
    assert mdm_a.get("/api/v1/devices/?patch_level_before=").json() == {"patch_level_before": [EMPTY]}
    assert mdm_a.get("/api/v1/devices/?ordering=").json() == {"ordering": [EMPTY]}


def test_a_filter_left_out_still_does_not_filter(mdm_a, device_a):
    response = mdm_a.get("/api/v1/devices/")

    assert response.status_code == 200
    assert [d["serial"] for d in response.json()["results"]] == [device_a.serial]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/devices/", {"serial": 12345}, "serial"),
        ("/api/v1/devices/", {"serial": "R58N1", "imei": 356938035643809}, "imei"),
        ("/api/v1/checkins/", {"serial": 12345, "reported_at": "2024-03-01T08:30:00Z"}, "serial"),
        ("/api/v1/checkins/", {"serial": "R58N1", "reported_at": "2024-03-01T08:30:00Z", "build_number": 1}, None),
    ],
)
def test_a_number_where_text_belongs_is_a_400_not_coerced(mdm_a, org_a, path, body, field):
    response = mdm_a.post(path, body, format="json")

    assert response.status_code == 400, response.content
    errors = response.json().get("errors") or response.json()
    assert set(errors) == {field or "build_number"}
    assert not Device.objects.filter(serial="12345").exists()


def test_a_number_given_as_an_alias_is_a_400(mdm_a, phone_model):
    response = mdm_a.post(f"/api/v1/models/{phone_model.pk}/aliases/", {"name": 718}, format="json")

    assert response.status_code == 400
    assert set(response.json()) == {"name"}


@pytest.mark.parametrize("path", ["/api/v1/checkins/", "/api/v1/ingest/headwind/", "/api/v1/ingest/amapi/"])
def test_an_empty_list_and_a_list_over_1000_are_400s_naming_the_limit(mdm_a, path):
    for body in ([], [{}] * 1001):
        response = mdm_a.post(path, body, format="json")

        assert response.status_code == 400, (len(body), response.content)
        assert "1000" in response.json()["non_field_errors"][0]
    assert not CheckIn.objects.exists()


def test_a_report_the_schema_refuses_in_a_list_is_an_error_item_and_the_others_are_stored(mdm_a, device_a):
    now = timezone.now()
    good = {"serial": device_a.serial, "reported_at": (now - dt.timedelta(hours=1)).isoformat()}

    response = mdm_a.post("/api/v1/checkins/", [good, {"serial": device_a.serial}, 7], format="json")

    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == ["created", "error", "error"]
    assert "reported_at" in response.json()["results"][1]["errors"]


def test_a_headwind_id_sent_as_a_number_is_read_as_its_id(mdm_a):
    response = mdm_a.post(
        "/api/v1/ingest/headwind/", {"number": 141, "serial": "HW-0141", "model": "Core-Z5"}, format="json"
    )

    assert response.status_code == 201, response.content
