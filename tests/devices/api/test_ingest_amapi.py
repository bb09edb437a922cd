"""POST /api/v1/ingest/amapi/: Android Management API Device resources, alone, in a list or in a Pub/Sub push."""

from __future__ import annotations

import base64
import copy
import json

import pytest

from devices.models import CheckIn, Device, RejectedMessage
from tests.devices.checkins.test_parsers import amapi_device
from tests.factories import DeviceFactory, DeviceModelFactory, OSBuildFactory

URL = "/api/v1/ingest/amapi/"


@pytest.fixture
def xcover(db):
    model = DeviceModelFactory(manufacturer__name="Samsung", manufacturer__slug="samsung", name="SM-G556B")
    return OSBuildFactory(model=model, build_number="UP1A.231005.007.G556BXXS4BXB1")


def envelope(device: dict, **attributes) -> dict:
    return {
        "message": {
            "data": base64.b64encode(json.dumps(device).encode()).decode(),
            "attributes": {"notificationType": "STATUS_REPORT", **attributes},
            "messageId": "136969346945",
            "publishTime": "2024-03-01T07:30:01.000Z",
        },
        "subscription": "projects/fleetpatch/subscriptions/amapi-push",
    }


def test_a_realistic_device_resource_is_stored_as_an_amapi_check_in(reporter_a, org_a, xcover):
    device = DeviceFactory(organisation=org_a, model=xcover.model, serial="R58N12ABCDE", imei=None)

    response = reporter_a.post(URL, amapi_device(), format="json")

    assert response.status_code == 201, response.json()
    check_in = CheckIn.objects.get(device=device)
    assert check_in.source == "amapi"
    assert check_in.build == xcover
    assert check_in.battery_level_pct == 72
    assert check_in.raw["softwareInfo"]["systemUpdateInfo"]["updateStatus"] == "UP_TO_DATE"
    device.refresh_from_db()
    assert device.current_build == xcover
    assert device.android_version == "14"


def test_an_unknown_device_is_enrolled_with_its_model_found_by_brand_and_model(mdm_a, org_a, xcover):
    response = mdm_a.post(URL, amapi_device(), format="json")

    assert response.status_code == 201
    device = Device.objects.get(organisation=org_a, serial="R58N12ABCDE")
    assert device.model == xcover.model
    assert device.imei == "356938035643809"


def test_a_list_of_devices_answers_per_item(reporter_a, org_a, xcover):
    DeviceFactory(organisation=org_a, model=xcover.model, serial="R58N12ABCDE", imei=None)
    broken = amapi_device()
    broken["softwareInfo"]["securityPatchLevel"] = "2024-99-01"

    response = reporter_a.post(URL, [amapi_device(), broken], format="json")

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "error"]
    assert list(results[1]["errors"]) == ["softwareInfo.securityPatchLevel"]


def test_a_pubsub_push_envelope_is_decoded_and_stored_once(reporter_a, org_a, xcover):
    device = DeviceFactory(organisation=org_a, model=xcover.model, serial="R58N12ABCDE", imei=None)

    first = reporter_a.post(URL, envelope(amapi_device()), format="json")
    redelivered = reporter_a.post(URL, envelope(amapi_device()), format="json")

    assert first.status_code == 201
    assert redelivered.status_code == 200
    assert redelivered.json()["status"] == "redelivered"
    assert CheckIn.objects.get(device=device).raw["_pubsub"] == {"messageId": "136969346945"}


def test_an_envelope_with_bad_base64_is_acknowledged_and_recorded_naming_the_problem(reporter_a, org_a):
    # Pub/Sub redelivers every non-2xx for days: a message that can never be read is acknowledged.
    body = envelope(amapi_device())
    body["message"]["data"] = "%%% not base64 %%%"

    response = reporter_a.post(URL, body, format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    assert "base64" in response.json()["errors"]["message.data"][0]
    rejected = RejectedMessage.objects.get(pk=response.json()["rejected_message_id"])
    assert (rejected.organisation, rejected.kind, rejected.message_id) == (org_a, "payload", "136969346945")


def test_an_envelope_whose_data_is_not_json_is_acknowledged_and_recorded(reporter_a):
    body = envelope({})
    body["message"]["data"] = base64.b64encode(b"<xml/>").decode()

    response = reporter_a.post(URL, body, format="json")

    assert response.status_code == 200
    assert "message.data" in response.json()["errors"]
    assert RejectedMessage.objects.get().raw["message"]["data"] == body["message"]["data"]


def test_a_notification_without_a_device_is_acknowledged_and_ignored(reporter_a):
    response = reporter_a.post(URL, envelope({"name": "operations/1"}, notificationType="COMMAND"), format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert not CheckIn.objects.exists()


def test_renamed_and_missing_sections_are_tolerated(reporter_a, org_a, xcover):
    device = DeviceFactory(organisation=org_a, model=xcover.model, serial="R58N12ABCDE", imei=None)
    resource = copy.deepcopy(amapi_device())
    del resource["lastStatusReportTime"]  # a device that never sent a status report: its last policy sync
    resource["networkInfo"] = {"telephonyInfos": [{"imei": "356938035643809", "carrierName": "Orange"}]}
    del resource["powerManagementEvents"]

    response = reporter_a.post(URL, resource, format="json")

    assert response.status_code == 201, response.json()
    assert CheckIn.objects.get(device=device).battery_level_pct is None


def test_ingesting_needs_the_report_scope(reader_a, anonymous):
    assert anonymous.post(URL, amapi_device(), format="json").status_code == 401
    assert reader_a.post(URL, amapi_device(), format="json").status_code == 403


def test_a_pubsub_payload_holding_a_nul_character_is_rejected_naming_message_data(reporter_a):
    # Inside base64, "\u0000" escaped the API's JSON checks and reached PostgreSQL's jsonb (a 500).
    data = base64.b64encode(json.dumps({**amapi_device(), "note": "\x00"}).encode()).decode()

    response = reporter_a.post(URL, {"message": {"data": data}}, format="json")

    assert response.status_code == 200
    assert list(response.json()["errors"]) == ["message.data"]
    assert not CheckIn.objects.exists()
    assert RejectedMessage.objects.get().kind == "payload"


def test_telephony_infos_that_are_not_a_list_are_ignored_not_a_500(reporter_a, org_a, xcover):
    DeviceFactory(organisation=org_a, model=xcover.model, serial="R58N12ABCDE", imei=None)
    resource = copy.deepcopy(amapi_device())
    resource["networkInfo"] = {"telephonyInfos": 5}

    response = reporter_a.post(URL, resource, format="json")

    assert response.status_code == 201, response.json()
