"""Parsing reports: FleetPatch's format, Android Management API devices, Headwind reports, the audit copy."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from django.utils import timezone

from devices.checkins.audit import RAW_MAX_BYTES, bounded_raw
from devices.checkins.parsers import (
    _NATIVE,
    PayloadError,
    _fast_validate,
    decode_pubsub,
    parse_amapi,
    parse_headwind,
    parse_native,
)
from devices.choices import CheckInSource

TODAY = timezone.now().date()


def native(**fields) -> dict:
    return {
        "serial": "SN-1",
        "imei": "356938035643809",
        "reported_at": "2024-03-01T08:30:00+01:00",
        "build_number": "UP1A.231005.007",
        "android_version": "14",
        "security_patch_level": "2024-02-01",
        "battery_level": 81,
        "battery_health": 92,
        "battery_cycle_count": 212,
        "agent_version": "3.2.1",
        **fields,
    }


def amapi_device(**overrides) -> dict:
    """A Device resource as enterprises.devices.get returns it (abridged, with fields FleetPatch ignores)."""
    device = {
        "name": "enterprises/LC00abcd/devices/3a1b2c3d4e5f",
        "managementMode": "DEVICE_OWNER",
        "state": "ACTIVE",
        "appliedState": "ACTIVE",
        "policyCompliant": True,
        "enrollmentTime": "2023-11-02T09:12:44.120Z",
        "lastStatusReportTime": "2024-03-01T07:30:00.123456789Z",
        "lastPolicySyncTime": "2024-03-01T07:29:10.001Z",
        "apiLevel": 34,
        "hardwareInfo": {
            "brand": "samsung",
            "hardware": "s5e8835",
            "manufacturer": "samsung",
            "serialNumber": "R58N12ABCDE",
            "model": "SM-G556B",
            "enterpriseSpecificId": "ABCDEF0123456789",
        },
        "softwareInfo": {
            "androidVersion": "14",
            "androidDevicePolicyVersionCode": 4321,
            "androidDevicePolicyVersionName": "121.54.2",
            "androidBuildNumber": "UP1A.231005.007.G556BXXS4BXB1",
            "deviceKernelVersion": "5.15.94",
            "bootloaderVersion": "G556BXXS4BXB1",
            "androidBuildTime": "2024-02-05T10:00:00Z",
            "securityPatchLevel": "2024-02-01",
            "primaryLanguageCode": "fr-FR",
            "systemUpdateInfo": {"updateStatus": "UP_TO_DATE"},
        },
        "networkInfo": {"imei": "356938035643809", "networkOperatorName": "Orange F"},
        "powerManagementEvents": [
            {"eventType": "BATTERY_LEVEL_COLLECTED", "createTime": "2024-03-01T06:00:00Z", "batteryLevel": 55.0},
            {"eventType": "POWER_CONNECTED", "createTime": "2024-03-01T06:30:00Z"},
            {"eventType": "BATTERY_LEVEL_COLLECTED", "createTime": "2024-03-01T07:00:00Z", "batteryLevel": 71.6},
            {"eventType": "BATTERY_LEVEL_COLLECTED", "createTime": "2024-02-29T07:00:00Z", "batteryLevel": 99.0},
        ],
        "someFieldAddedNextYear": {"whatever": 1},
    }
    device.update(overrides)
    return device


# --- Native ----------------------------------------------------------------------------------------
def test_a_native_report_becomes_a_report_and_an_identity():
    parsed = parse_native(native(model="Crosscall Core-Z5"))

    assert parsed.errors is None
    assert parsed.identity.serial == "SN-1"
    assert parsed.identity.imei == "356938035643809"
    assert parsed.identity.model_names == ("Crosscall Core-Z5",)
    assert parsed.report.reported_at == dt.datetime(2024, 3, 1, 7, 30, tzinfo=dt.UTC)
    assert parsed.report.security_patch_level == dt.date(2024, 2, 1)
    assert (parsed.report.battery_level_pct, parsed.report.battery_health_pct) == (81, 92)
    assert parsed.report.source == CheckInSource.API
    assert parsed.report.raw["serial"] == "SN-1"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        # An IMEI is the only identity left: its reason is the error (with a serial, a warning: below).
        ({"serial": "", "imei": "356938035643808"}, "imei"),  # bad check digit
        ({"serial": "", "imei": "12345"}, "imei"),
        ({"serial": "unknown", "imei": None}, "serial"),
        ({"reported_at": "2024-03-01T08:30:00"}, "reported_at"),  # no offset
        ({"reported_at": "yesterday"}, "reported_at"),
        ({"reported_at": (timezone.now() + dt.timedelta(hours=1)).isoformat()}, "reported_at"),
        ({"security_patch_level": "2024-13-01"}, "security_patch_level"),
        ({"security_patch_level": (TODAY + dt.timedelta(days=40)).isoformat()}, "security_patch_level"),
        ({"battery_level": 101}, "battery_level"),
        ({"battery_health": "high"}, "battery_health"),
        ({"battery_cycle_count": -1}, "battery_cycle_count"),
        ({"serial": "", "imei": None}, "serial"),
    ],
)
def test_a_bad_native_field_is_named_with_its_reason(fields, field):
    parsed = parse_native(native(**fields))

    assert parsed.report is None
    assert list(parsed.errors) == [field]
    assert all(isinstance(reason, str) and reason for reason in parsed.errors[field])


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"model": "  Crosscall Core-Z5 ", "serial": " SN-2 ", "imei": ""},
        {"imei": None, "security_patch_level": None, "battery_level": None, "battery_health": 0},
        {"serial": "", "reported_at": "2024-03-01T07:30:00.123456789Z"},
        {"unknown_field": [1, 2], "agent_version": ""},
    ],
)
def test_the_fast_path_gives_exactly_what_the_serializer_gives(fields):
    data = native(**fields)

    assert _fast_validate(data) == _NATIVE.run_validation(data)


@pytest.mark.parametrize(
    "fields",
    [
        {"battery_level": "81"},  # text for a number: the serializer decides
        {"battery_level": True},
        {"serial": 12345},
        {"imei": "356938035643808"},
        {"serial": "SN\x001"},
        {"reported_at": "2024-03-01T08:30:00"},
    ],
)
def test_the_fast_path_leaves_anything_less_plain_to_the_serializer(fields):
    assert _fast_validate(native(**fields)) is None


def test_a_report_that_is_not_an_object_is_an_error():
    assert parse_native(["SN-1"]).errors


def test_a_report_a_few_minutes_ahead_of_the_server_clock_is_accepted():
    ahead = (timezone.now() + dt.timedelta(minutes=2)).isoformat()

    assert parse_native(native(reported_at=ahead)).errors is None


# --- Android Management API -----------------------------------------------------------------------
def test_an_amapi_device_maps_onto_a_report():
    parsed = parse_amapi(amapi_device())

    assert parsed.errors is None
    assert parsed.identity.serial == "R58N12ABCDE"
    assert parsed.identity.imei == "356938035643809"
    assert parsed.identity.model_names == ("samsung SM-G556B", "SM-G556B")
    report = parsed.report
    assert report.source == CheckInSource.AMAPI
    assert report.reported_at == dt.datetime(2024, 3, 1, 7, 30, 0, 123456, tzinfo=dt.UTC)
    assert report.build_number == "UP1A.231005.007.G556BXXS4BXB1"
    assert report.android_version == "14"
    assert report.security_patch_level == dt.date(2024, 2, 1)
    assert report.battery_level_pct == 72  # the newest BATTERY_LEVEL_COLLECTED event, rounded
    assert report.agent_version == "121.54.2"
    assert report.raw["softwareInfo"]["systemUpdateInfo"] == {"updateStatus": "UP_TO_DATE"}


def test_an_amapi_device_without_optional_sections_is_accepted():
    device = amapi_device()
    del device["networkInfo"], device["powerManagementEvents"]
    device["softwareInfo"] = {"androidBuildNumber": "X.1"}

    parsed = parse_amapi(device)

    assert parsed.errors is None
    assert parsed.identity.imei is None
    assert parsed.report.battery_level_pct is None


def test_an_amapi_error_names_the_field_as_amapi_spells_it():
    device = amapi_device()
    device["softwareInfo"]["securityPatchLevel"] = "soon"

    assert list(parse_amapi(device).errors) == ["softwareInfo.securityPatchLevel"]


def test_an_amapi_device_without_serial_imei_or_name_is_an_error():
    device = amapi_device(hardwareInfo={"model": "X"}, networkInfo={})
    del device["name"]

    assert "hardwareInfo.serialNumber" in parse_amapi(device).errors


def test_a_pubsub_envelope_is_decoded():
    data = base64.b64encode(json.dumps(amapi_device()).encode()).decode()

    decoded = decode_pubsub({"message": {"data": data, "messageId": "136969346945"}, "subscription": "s"})

    assert decoded["hardwareInfo"]["serialNumber"] == "R58N12ABCDE"
    assert decoded["_pubsub"] == {"messageId": "136969346945"}


@pytest.mark.parametrize("data", ["***not base64***", base64.b64encode(b"{not json").decode()])
def test_a_pubsub_envelope_with_bad_data_names_the_problem(data):
    with pytest.raises(PayloadError) as error:
        decode_pubsub({"message": {"data": data}})

    assert list(error.value.errors) == ["message.data"]


# --- Headwind --------------------------------------------------------------------------------------
def test_a_headwind_report_has_no_build_and_is_dated_when_received():
    received = timezone.now().replace(microsecond=0)
    info = {
        "deviceId": "h0042",
        "serial": "HW-1",
        "imei": "356938035643809",
        "model": "Core-Z5",
        "androidVersion": "13",
        "batteryLevel": 64,
        "batteryCharging": "usb",
        "launcherVersion": "5.27",
        "mdmMode": True,
        "applications": [{"pkg": "com.hmdm.launcher", "version": "5.27"}],
    }

    parsed = parse_headwind(info, received_at=received)

    assert parsed.errors is None
    assert parsed.identity.model_names == ("Core-Z5",)
    assert parsed.report.build_number == ""
    assert parsed.report.reported_at == received
    assert (parsed.report.android_version, parsed.report.battery_level_pct) == ("13", 64)
    assert parsed.report.agent_version == "5.27"
    assert parsed.report.source == CheckInSource.HEADWIND


def test_a_headwind_timestamp_in_milliseconds_dates_the_report():
    parsed = parse_headwind({"serial": "HW-1", "timestamp": 1709281800000}, received_at=timezone.now())

    assert parsed.report.reported_at == dt.datetime(2024, 3, 1, 8, 30, tzinfo=dt.UTC)


def test_a_headwind_report_with_a_bad_imei_and_nothing_else_to_name_the_device_names_it():
    parsed = parse_headwind({"serial": "unknown", "imei": "123"}, received_at=timezone.now())

    assert set(parsed.errors) == {"serial", "imei"}


# --- Audit copy ------------------------------------------------------------------------------------
def test_the_audit_copy_leaves_out_tokens_and_secrets_at_any_depth():
    raw = bounded_raw({"serial": "SN-1", "apiToken": "x", "auth": {"password": "p", "user": "u"}, "client_secret": "s"})

    assert raw == {"serial": "SN-1", "auth": {"user": "u"}}


def test_a_payload_over_16_kib_is_stored_as_its_size_and_top_level_keys():
    payload = {"serial": "SN-1", "applications": ["com.example." + "x" * 100] * 200}

    raw = bounded_raw(payload)

    assert raw["truncated"] is True
    assert raw["bytes"] > RAW_MAX_BYTES
    assert raw["keys"] == ["serial", "applications"]
    assert len(json.dumps(raw)) < 1024


def test_a_payload_under_16_kib_is_kept_whole():
    payload = {"serial": "SN-1", "applications": ["com.example.app"] * 100}

    assert bounded_raw(payload) == payload


# --- Found by the property tests (tests/devices/checkins/test_parser_properties.py) ------------------------
def test_a_report_dated_before_year_one_in_utc_is_an_error_not_a_crash():
    # 0001-01-01T00:00+23:59 is a valid ISO 8601 time whose UTC instant is before year 1: converting it
    # raised OverflowError.
    parsed = parse_native(native(reported_at="0001-01-01T00:00:00+23:59"))

    assert list(parsed.errors) == ["reported_at"]


def test_a_headwind_timestamp_before_year_one_in_utc_names_the_timestamp():
    parsed = parse_headwind({"serial": "HW-1", "timestamp": "0001-01-01T00:00:00+01:00"}, received_at=timezone.now())

    assert list(parsed.errors) == ["timestamp"]


@pytest.mark.parametrize("level", [float("inf"), float("-inf"), True])
def test_an_amapi_battery_level_that_is_not_a_finite_number_is_ignored(level):
    events = [{"eventType": "BATTERY_LEVEL_COLLECTED", "createTime": "2024-03-01T07:00:00Z", "batteryLevel": level}]

    parsed = parse_amapi(amapi_device(powerManagementEvents=events))

    assert parsed.errors is None
    assert parsed.report.battery_level_pct is None


@pytest.mark.parametrize("infos", [5, True, "356938035643809", {"imei": "356938035643809"}])
def test_amapi_telephony_infos_that_are_not_a_list_are_ignored(infos):
    parsed = parse_amapi(amapi_device(networkInfo={"telephonyInfos": infos}))

    assert parsed.errors is None
    assert parsed.identity.imei is None


@pytest.mark.parametrize("payload", ['{"a": 1e400}', '{"a": "\\u0000"}', '{"a": "\\ud800"}', '{"a": NaN}'])
def test_a_pubsub_payload_a_database_cannot_store_names_message_data(payload):
    # The envelope's data is read with the API's own JSON rules, as a body would be.
    with pytest.raises(PayloadError) as error:
        decode_pubsub({"message": {"data": base64.b64encode(payload.encode()).decode()}})

    assert list(error.value.errors) == ["message.data"]


def test_a_pubsub_payload_nested_too_deeply_names_message_data():
    payload = "[" * 100_000 + "]" * 100_000
    with pytest.raises(PayloadError) as error:
        decode_pubsub({"message": {"data": base64.b64encode(payload.encode()).decode()}})

    assert list(error.value.errors) == ["message.data"]


def test_the_audit_copy_of_a_payload_with_a_lone_surrogate_is_sized_not_a_crash():
    assert bounded_raw({"note": "\ud800"}) == {"note": "\ud800"}
