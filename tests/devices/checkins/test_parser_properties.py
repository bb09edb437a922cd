"""Properties of the report parsers (FleetPatch's format, Android Management API with its Pub/Sub envelope,
Headwind), checked on inputs hypothesis makes up: whatever JSON arrives, a parser returns either a valid
report or errors that name the problem — it never raises anything else. Then the same promise at the HTTP
level: any JSON body sent to an ingestion endpoint gets an answer under 500 in a documented shape.

Generation is derandomized by the ``ci`` hypothesis profile (tests/conftest.py); ``FUZZ_EXAMPLES`` and
``HYPOTHESIS_PROFILE=explore`` run longer, new examples (README "Running the tests").
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import math
import os
from typing import Any

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from rest_framework.views import APIView

from devices.checkins.audit import RAW_MAX_BYTES
from devices.checkins.parsers import (
    AMAPI_FIELDS,
    FUTURE_TOLERANCE,
    HEADWIND_FIELDS,
    NON_FIELD,
    ParsedReport,
    PayloadError,
    decode_pubsub,
    parse_amapi,
    parse_headwind,
    parse_native,
)
from devices.validators import luhn_is_valid
from tests.api_personas import ALL_SCOPES, make_client

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
# The parsers are pure functions: many more examples cost little.
PARSER_EXAMPLES = EXAMPLES * 8

NATIVE_FIELDS = (
    "serial",
    "imei",
    "model",
    "reported_at",
    "build_number",
    "android_version",
    "security_patch_level",
    "battery_level",
    "battery_health",
    "battery_cycle_count",
    "agent_version",
)

# --- Strategies ------------------------------------------------------------------------------------

# Values MDMs and attackers actually send where a date, a number or an identifier is expected. Infinity
# is a JSON value too: Python's json reads 1e400 as float("inf"). NaN is not: the API refuses it as
# malformed JSON before any parser sees it.
offsets = st.timedeltas(min_value=-dt.timedelta(hours=23, minutes=59), max_value=dt.timedelta(hours=23, minutes=59))
aware_datetimes = st.builds(
    lambda moment, offset: moment.replace(tzinfo=dt.timezone(offset)),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59)),
    offsets.map(lambda o: dt.timedelta(minutes=o // dt.timedelta(minutes=1))),
)
recent_datetimes = st.datetimes(
    min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2026, 1, 1), timezones=st.just(dt.UTC)
)
# Known troublemakers, also tried in every field one by one (random draws would rarely combine them).
HOSTILE = [
    None,
    True,
    -1,
    101,
    2**31,
    10**30,
    -(10**30),
    1.5,
    1e308,
    math.inf,
    -math.inf,
    "",
    " ",
    "\x00",
    "\ud800",
    "🔋" * 70,
    "2024-02-30",
    "2024-02-30T10:00:00Z",
    "2024-03-01T08:30:00",  # naive
    "0001-01-01T00:00:00+23:59",  # before year 1 in UTC
    "9999-12-31T23:59:59-23:59",  # after year 9999 in UTC
    "0001-01-01",
    "9999-12-31",
    "356938035643809",  # a valid IMEI
    "356938035643808",  # a wrong check digit
    "9" * 400,
    "x" * 400,
    [],
    [None],
    {},
    {"eventType": "BATTERY_LEVEL_COLLECTED", "batteryLevel": math.inf},
]
tricky_scalars = st.one_of(
    aware_datetimes.map(dt.datetime.isoformat),
    st.datetimes().map(dt.datetime.isoformat),  # naive
    st.dates().map(dt.date.isoformat),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-2, max_value=102),
    st.sampled_from(HOSTILE),
    st.from_regex(r"\A[0-9]{14,16}\Z"),
)
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    tricky_scalars,
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def valid_native(reported_at: dt.datetime) -> dict:
    return {
        "serial": "SN-1",
        "imei": "356938035643809",
        "model": "Crosscall Core-Z5",
        "reported_at": reported_at.isoformat(),
        "build_number": "UP1A.231005.007",
        "android_version": "14",
        "security_patch_level": "2024-02-01",
        "battery_level": 81,
        "battery_health": 92,
        "battery_cycle_count": 212,
        "agent_version": "3.2.1",
    }


def valid_amapi(reported_at: dt.datetime) -> dict:
    return {
        "name": "enterprises/LC00abcd/devices/3a1b2c3d4e5f",
        "lastStatusReportTime": reported_at.isoformat(),
        "lastPolicySyncTime": reported_at.isoformat(),
        "hardwareInfo": {"brand": "samsung", "manufacturer": "samsung", "serialNumber": "R58N12", "model": "SM-G556B"},
        "softwareInfo": {
            "androidVersion": "14",
            "androidDevicePolicyVersionName": "121.54.2",
            "androidBuildNumber": "UP1A.231005.007",
            "securityPatchLevel": "2024-02-01",
        },
        "networkInfo": {"imei": "356938035643809", "telephonyInfos": [{"imei": "356938035643809"}]},
        "powerManagementEvents": [
            {"eventType": "BATTERY_LEVEL_COLLECTED", "createTime": reported_at.isoformat(), "batteryLevel": 71.6}
        ],
    }


def valid_headwind(reported_at: dt.datetime) -> dict:
    return {
        "serial": "HW-1",
        "imei": "356938035643809",
        "model": "Core-Z5",
        "androidVersion": "14",
        "batteryLevel": 80,
        "launcherVersion": "5.27",
        "timestamp": int(reported_at.timestamp() * 1000),
    }


# (path inside an AMAPI Device, the error keys a bad value there may produce)
AMAPI_PATHS = [
    (("hardwareInfo",), {"hardwareInfo.serialNumber"}),
    (("hardwareInfo", "serialNumber"), {"hardwareInfo.serialNumber"}),
    (("hardwareInfo", "model"), set()),
    (("softwareInfo",), {v for v in AMAPI_FIELDS.values() if v.startswith("softwareInfo.")}),
    (("softwareInfo", "androidVersion"), {"softwareInfo.androidVersion"}),
    (("softwareInfo", "androidBuildNumber"), {"softwareInfo.androidBuildNumber"}),
    (("softwareInfo", "securityPatchLevel"), {"softwareInfo.securityPatchLevel"}),
    (("softwareInfo", "androidDevicePolicyVersionName"), {"softwareInfo.androidDevicePolicyVersionName"}),
    (("networkInfo",), {"networkInfo.imei"}),
    (("networkInfo", "imei"), {"networkInfo.imei"}),
    (("networkInfo", "telephonyInfos"), {"networkInfo.imei"}),
    (("lastStatusReportTime",), {"lastStatusReportTime"}),
    (("powerManagementEvents",), {"powerManagementEvents.batteryLevel"}),
    (("name",), set()),
]


def _replaced(document: dict, path: tuple[str, ...], value: Any) -> dict:
    copy = json.loads(json.dumps(document))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


# --- What every parser promises --------------------------------------------------------------------


def assert_report_or_named_errors(parsed: ParsedReport, *, allowed_error_keys: set[str]) -> None:
    """Either a report that respects every rule, or errors naming allowed fields with readable reasons."""
    assert isinstance(parsed, ParsedReport)
    if parsed.errors is not None:
        assert parsed.report is None
        assert parsed.errors, "an error result must say what is wrong"
        assert set(parsed.errors) <= allowed_error_keys, parsed.errors
        for reasons in parsed.errors.values():
            assert reasons
            assert all(isinstance(reason, str) and reason and "%(" not in reason for reason in reasons), reasons
        return
    report, identity = parsed.report, parsed.identity
    assert report is not None and identity is not None
    assert identity.serial or identity.imei
    assert len(identity.serial) <= 64
    if identity.imei is not None:
        assert len(identity.imei) == 15 and identity.imei.isdigit() and luhn_is_valid(identity.imei)
    assert timezone.is_aware(report.reported_at)
    assert report.reported_at <= timezone.now() + FUTURE_TOLERANCE
    assert report.reported_at.utcoffset() == dt.timedelta(0)  # stored as UTC
    for value in (report.battery_level_pct, report.battery_health_pct):
        assert value is None or (type(value) is int and 0 <= value <= 100)
    assert report.battery_cycle_count is None or 0 <= report.battery_cycle_count <= 2_147_483_647
    assert report.security_patch_level is None or isinstance(report.security_patch_level, dt.date)
    for text in (identity.serial, report.build_number, report.android_version, report.agent_version):
        assert isinstance(text, str) and "\x00" not in text and text == text.strip()
    # The audit copy is a JSON object of bounded size.
    assert isinstance(report.raw, dict)
    assert len(json.dumps(report.raw, default=str).encode("utf-8", "surrogatepass")) <= RAW_MAX_BYTES


NATIVE_ERRORS = {*NATIVE_FIELDS, NON_FIELD}
AMAPI_ERRORS = {*AMAPI_FIELDS.values(), NON_FIELD}
HEADWIND_ERRORS = {*HEADWIND_FIELDS.values(), NON_FIELD}

parser_settings = settings(max_examples=PARSER_EXAMPLES)


@parser_settings
@given(json_values)
def test_any_json_is_a_native_report_or_errors_naming_its_fields(value):
    assert_report_or_named_errors(parse_native(value), allowed_error_keys=NATIVE_ERRORS)


@parser_settings
@given(json_values)
def test_any_json_is_an_amapi_report_or_errors_named_as_amapi_spells_them(value):
    assert_report_or_named_errors(parse_amapi(value), allowed_error_keys=AMAPI_ERRORS)


@parser_settings
@given(json_values)
def test_any_json_is_a_headwind_report_or_errors_named_as_headwind_spells_them(value):
    assert_report_or_named_errors(parse_headwind(value, received_at=timezone.now()), allowed_error_keys=HEADWIND_ERRORS)


@parser_settings
@given(recent_datetimes, st.sampled_from(NATIVE_FIELDS), json_values)
def test_one_bad_native_field_is_the_only_field_named(reported_at, field, value):
    report = {**valid_native(reported_at), field: value}
    assert_report_or_named_errors(parse_native(report), allowed_error_keys={field})


@parser_settings
@given(recent_datetimes, st.sampled_from(AMAPI_PATHS), json_values)
def test_one_bad_amapi_field_is_the_only_field_named(reported_at, path_and_keys, value):
    path, keys = path_and_keys
    device = _replaced(valid_amapi(reported_at), path, value)
    assert_report_or_named_errors(parse_amapi(device), allowed_error_keys=keys)


@parser_settings
@given(recent_datetimes, st.sampled_from(sorted({*HEADWIND_FIELDS.values(), "model"})), json_values)
def test_one_bad_headwind_field_is_the_only_field_named(reported_at, field, value):
    info = {**valid_headwind(reported_at), field: value}
    allowed = {field} if field != "model" else set()
    assert_report_or_named_errors(parse_headwind(info, received_at=timezone.now()), allowed_error_keys=allowed)


@parser_settings
@given(recent_datetimes, st.sampled_from(NATIVE_FIELDS))
def test_a_valid_report_stays_valid_without_any_one_optional_field(reported_at, field):
    report = valid_native(reported_at)
    del report[field]
    parsed = parse_native(report)
    if field == "reported_at":
        assert set(parsed.errors) == {"reported_at"}
    else:
        assert_report_or_named_errors(parsed, allowed_error_keys=set())


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_every_hostile_value_in_every_field_is_a_report_or_that_fields_error(value):
    reported_at = timezone.now() - dt.timedelta(hours=1)
    for field in NATIVE_FIELDS:
        parsed = parse_native({**valid_native(reported_at), field: value})
        assert_report_or_named_errors(parsed, allowed_error_keys={field})
    for path, keys in AMAPI_PATHS:
        assert_report_or_named_errors(
            parse_amapi(_replaced(valid_amapi(reported_at), path, value)), allowed_error_keys=keys
        )
        # A dual-SIM device without networkInfo.imei: its IMEI comes from telephonyInfos.
        without_imei = _replaced(valid_amapi(reported_at), ("networkInfo",), {"telephonyInfos": value})
        assert_report_or_named_errors(parse_amapi(without_imei), allowed_error_keys={"networkInfo.imei"})
        events = [{"eventType": "BATTERY_LEVEL_COLLECTED", "createTime": value, "batteryLevel": value}]
        device = _replaced(valid_amapi(reported_at), ("powerManagementEvents",), events)
        assert_report_or_named_errors(parse_amapi(device), allowed_error_keys={"powerManagementEvents.batteryLevel"})
    for field in sorted({*HEADWIND_FIELDS.values(), "model", "ts"}):
        parsed = parse_headwind({**valid_headwind(reported_at), field: value}, received_at=timezone.now())
        assert_report_or_named_errors(parsed, allowed_error_keys={field} if field in HEADWIND_ERRORS else set())


pubsub_data = st.one_of(
    json_values.map(lambda v: base64.b64encode(json.dumps(v).encode()).decode()),
    json_values.map(lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).decode()),
    st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
    st.sampled_from(['{"a": 1e400}', '{"a": "\\u0000"}', '{"a": "\\ud800"}', "[NaN]"]).map(
        lambda text: base64.b64encode(text.encode()).decode()
    ),
    json_values,
)


@parser_settings
@given(st.dictionaries(st.sampled_from(["message", "subscription"]), json_values) | json_values, pubsub_data)
def test_a_pubsub_envelope_decodes_to_an_amapi_report_or_names_message_data(envelope, data):
    if isinstance(envelope, dict) and isinstance(envelope.get("message"), dict):
        envelope["message"]["data"] = data
    if not isinstance(envelope, dict):
        return
    try:
        decoded = decode_pubsub(envelope)
    except PayloadError as error:
        assert set(error.errors) == {"message.data"}
        return
    # What comes out of the envelope is storable, like a body the API's own JSON parser accepted.
    json.dumps(decoded, allow_nan=False).encode("utf-8")
    assert "\\u0000" not in json.dumps(decoded)
    assert_report_or_named_errors(parse_amapi(decoded), allowed_error_keys=AMAPI_ERRORS)


# --- Over HTTP -------------------------------------------------------------------------------------


def to_json(value: Any) -> bytes:
    """JSON as a client can send it: infinity as 1e400 (json.dumps would write the refused Infinity), and
    lone surrogates kept as \\ud800 escapes."""
    if isinstance(value, float) and math.isinf(value):
        return b"1e400" if value > 0 else b"-1e400"
    if isinstance(value, list):
        return b"[" + b",".join(to_json(item) for item in value) + b"]"
    if isinstance(value, dict):
        return b"{" + b",".join(to_json(str(k)) + b":" + to_json(v) for k, v in value.items()) + b"}"
    return json.dumps(value).encode("ascii")


def _is_reason_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)


def assert_documented_answer(response: Any) -> None:
    assert response.status_code < 500, response.content[:500]
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    body = response.json()
    assert isinstance(body, dict), body
    item_keys = {"index", "status", "device_id", "enrolled", "compliance_status", "errors", "warnings"}
    if response.status_code in (200, 201) and "results" in body:
        assert set(body) == {"results", "created", "duplicates", "errors"}
        assert len(body["results"]) == body["created"] + body["duplicates"] + body["errors"]
        for index, item in enumerate(body["results"]):
            assert set(item) == item_keys and item["index"] == index
            if item["status"] == "error":
                assert item["errors"] and all(_is_reason_list(r) for r in item["errors"].values()), item
    elif response.status_code in (200, 201):
        # A Pub/Sub envelope acknowledged without a check-in (ignored, redelivered, rejected and recorded).
        ack_keys = {"status", "notification_type", "message_id", "errors", "rejected_message_id"}
        assert set(body) == item_keys or (
            set(body) == ack_keys and body["status"] in {"ignored", "redelivered", "rejected"}
        ), body
    elif response.status_code == 400 and set(body) == item_keys:
        assert body["status"] == "error" and all(_is_reason_list(r) for r in body["errors"].values()), body
    elif response.status_code == 400 and "detail" in body:
        assert set(body) == {"detail"} and body["detail"].startswith("Malformed JSON"), body
    elif response.status_code == 400:
        assert body and all(_is_reason_list(r) for r in body.values()), body
    else:
        assert response.status_code == 413 and set(body) == {"detail"}, (response.status_code, body)


@pytest.fixture
def reporter(org_a, monkeypatch) -> APIClient:
    """Organisation A's MDM with every scope (so unknown devices are enrolled, and stored)."""
    # Hundreds of requests in one test: the per-client rate is not what is tested.
    monkeypatch.setattr(APIView, "throttle_classes", [])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_client(org_a, 'Fuzzing MDM', ALL_SCOPES)[1]}")
    return client


@pytest.fixture
def quiet_request_log():
    # Hundreds of expected 4xx would flood the output; a 500 still fails the assertion.
    logger = logging.getLogger("django.request")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def _bodies(valid: Any) -> st.SearchStrategy:
    """Any JSON, a valid report with one key replaced, a list mixing both, and a Pub/Sub envelope."""
    mutated = st.builds(
        lambda moment, key, value: {**valid(moment), key: value},
        recent_datetimes,
        st.text(max_size=20) | st.sampled_from(sorted(valid(dt.datetime(2024, 1, 1, tzinfo=dt.UTC)))),
        json_values,
    )
    envelope = pubsub_data.map(lambda data: {"message": {"data": data, "messageId": "1"}, "subscription": "s"})
    one = json_values | mutated | envelope
    return one | st.lists(one, min_size=1, max_size=5)


http_settings = settings(
    max_examples=EXAMPLES * 2, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "valid"),
    [
        ("/api/v1/checkins/", valid_native),
        ("/api/v1/ingest/amapi/", valid_amapi),
        ("/api/v1/ingest/headwind/", valid_headwind),
    ],
    ids=["native", "amapi", "headwind"],
)
def test_any_json_body_gets_an_answer_under_500_in_a_documented_shape(reporter, url, valid, quiet_request_log):
    @http_settings
    @given(_bodies(valid))
    def property_holds(body: Any) -> None:
        assert_documented_answer(reporter.post(url, to_json(body), content_type="application/json"))

    property_holds()
