"""Errors are for people: DRF's shapes, JSON everywhere under /api/, a bounded body, and no input that gives a 500."""

from __future__ import annotations

import itertools
import json
import logging

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.views import APIView

from tests.factories import OSBuildFactory

# --- Shapes -------------------------------------------------------------------------------------


def test_malformed_json_is_a_400_that_says_json(mdm_a):
    response = mdm_a.post("/api/v1/devices/", b'{"serial": ', content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


def test_a_field_error_names_the_field_and_the_reason(mdm_a):
    response = mdm_a.post("/api/v1/devices/", {"imei": "123"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["serial"] == ["This field is required."]
    assert "15 digits" in body["imei"][0]


def test_a_body_that_is_not_an_object_is_a_400(mdm_a):
    response = mdm_a.post("/api/v1/devices/", [1, 2], format="json")
    assert response.status_code == 400
    assert "non_field_errors" in response.json()


def test_an_unknown_url_under_api_is_a_json_404(mdm_a, anonymous):
    for client in (mdm_a, anonymous):
        for url in ("/api/v1/nothing/", "/api/v2/devices/", "/api/v1/devices/abc/", "/api/"):
            response = client.get(url)
            assert response.status_code == 404, url
            assert response["Content-Type"] == "application/json"
            assert response.json() == {"detail": "Not found."}


def test_another_content_type_is_a_415(mdm_a):
    response = mdm_a.post("/api/v1/devices/", b"serial=X", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert "detail" in response.json()


def test_an_unknown_charset_is_read_as_utf8_not_a_500(mdm_a):
    response = mdm_a.post("/api/v1/devices/", b'{"serial": "X"}', content_type="application/json; charset=klingon")
    assert response.status_code == 201


@pytest.mark.parametrize("method", ["put", "delete", "post", "patch"])
def test_a_method_an_endpoint_does_not_offer_is_a_405_not_a_500(mdm_a, device_a, fleet_a, phone_model, method):
    offered = {
        f"/api/v1/devices/{device_a.pk}/": {"patch"},
        f"/api/v1/fleets/{fleet_a.pk}/": set(),
        "/api/v1/fleets/": set(),
        "/api/v1/models/": set(),
        f"/api/v1/models/{phone_model.pk}/": set(),
        "/api/v1/compliance/summary/": set(),
        "/api/v1/compliance/time-to-patch/": set(),
        f"/api/v1/devices/by-serial/{device_a.serial}/": set(),
    }
    for url, methods in offered.items():
        if method not in methods:
            response = getattr(mdm_a, method)(url, {}, format="json")
            assert response.status_code == 405, url
            assert "detail" in response.json()


# --- Body size ----------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_a_413_naming_the_limit(mdm_a, settings):
    settings.API_MAX_BODY_BYTES = 1000
    response = mdm_a.post("/api/v1/devices/", {"serial": "x" * 2000}, format="json")
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["detail"]


def test_a_body_over_the_limit_without_content_length_is_a_413(mdm_a, settings):
    settings.API_MAX_BODY_BYTES = 1000
    body = json.dumps({"serial": "x" * 2000}).encode()
    # A chunked upload carries no Content-Length: the parser must stop reading by itself.
    response = mdm_a.generic("POST", "/api/v1/devices/", body, content_type="application/json", CONTENT_LENGTH="")
    assert response.status_code in (400, 413)  # no length: Django's test client may give DRF an empty stream


def test_the_default_limit_is_ten_mebibytes_and_djangos_own_limit_does_not_apply(mdm_a, settings):
    assert settings.API_MAX_BODY_BYTES == 10 * 1024 * 1024
    # 3 MB is over Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) but under the API's limit: accepted as input.
    response = mdm_a.post("/api/v1/devices/", {"serial": "S1", "assignee": "x" * 3_000_000}, format="json")
    assert response.status_code == 400
    assert "assignee" in response.json()


# --- No 500, whatever the input -----------------------------------------------------------------

NASTY_VALUES = [
    None,
    True,
    0,
    -1,
    10**30,
    -(10**30),
    2**63,
    1.5,
    1e308,
    "",
    " ",
    "x" * 5000,
    "\x00",
    "\ud800",
    "🔥" * 20,
    "2024-02-30",
    "2024-02-30T10:00:00Z",
    "0000-01-01",
    "9999-12-31T23:59:59-23:59",
    "NaN",
    "-1e999",
    "9" * 5000,
    [],
    [1, "2", None],
    {},
    {"id": 1, "nested": {"deeper": [None, {"x": []}]}},
]

RAW_BODIES = [
    b"",
    b"null",
    b"[]",
    b"[{}]",
    b'[null, 1, "x"]',
    b'"text"',
    b"12",
    b"true",
    b"{",
    b'{"serial": NaN}',
    b'{"serial": Infinity}',
    b'{"serial": 1e400}',
    b'{"serial": "\\ud800"}',
    b'{"serial": "\\u0000"}',
    b"\xff\xfe\x00",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"serial": ' + b"9" * 10_000 + b"}",
]

CHECKIN_FIELDS = [
    "serial",
    "imei",
    "reported_at",
    "build_number",
    "android_version",
    "security_patch_level",
    "battery_level_pct",
    "battery_health_pct",
    "battery_cycle_count",
    "agent_version",
]


@pytest.fixture
def write_endpoints(org_a, device_a, fleet_a, phone_model):
    """Every write endpoint with a body it accepts, so that one bad field is the only thing wrong."""
    private_build = OSBuildFactory(model=phone_model, organisation=org_a, build_number="INHOUSE.1")
    now = timezone.now().isoformat()
    device_fields = ["serial", "imei", "asset_tag", "assignee", "model", "fleet", "channel"]
    return [
        ("post", "/api/v1/devices/", {"serial": "NEW", "model": phone_model.pk, "fleet": "north"}, device_fields),
        ("patch", f"/api/v1/devices/{device_a.pk}/", {"assignee": "Ada"}, [*device_fields, "compliance_status"]),
        ("post", f"/api/v1/devices/{device_a.pk}/retire/", {}, ["retired_at"]),
        (
            "post",
            "/api/v1/builds/",
            {"model": phone_model.pk, "build_number": "N.1", "security_patch_level": "2024-01-05"},
            ["model", "build_number", "android_version", "security_patch_level", "released_at", "channel"],
        ),
        ("post", f"/api/v1/builds/{private_build.pk}/revoke/", {}, ["is_revoked"]),
        (
            "post",
            "/api/v1/battery-events/",
            {"device": device_a.pk, "occurred_at": now},
            ["device", "kind", "occurred_at", "part_serial", "health_pct", "reason", "performed_by"],
        ),
        (
            "post",
            "/api/v1/checkins/",
            {"serial": device_a.serial, "reported_at": now, "build_number": "X.1"},
            CHECKIN_FIELDS,
        ),
        (
            "post",
            "/api/v1/ingest/amapi/",
            {"hardwareInfo": {"serialNumber": device_a.serial}, "lastStatusReportTime": now},
            ["hardwareInfo", "softwareInfo", "lastStatusReportTime", "powerManagementEvents", "message", "name"],
        ),
        (
            "post",
            "/api/v1/ingest/headwind/",
            {"serial": device_a.serial},
            ["serial", "imei", "model", "androidVersion", "batteryLevel", "timestamp"],
        ),
    ]


def _post(client, method: str, url: str, body: bytes):
    return getattr(client, method)(url, body, content_type="application/json")


def _encode(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


@pytest.fixture(autouse=True)
def _no_throttling(monkeypatch):
    # Thousands of requests in one test would hit the per-client rate, which is not what is tested here.
    monkeypatch.setattr(APIView, "throttle_classes", [])


@pytest.fixture
def quiet_request_log():
    # Hundreds of expected 4xx would flood the output; a 500 still fails the assertion below.
    logger = logging.getLogger("django.request")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def test_no_raw_body_gives_a_500_on_any_write_endpoint(mdm_a, write_endpoints, quiet_request_log):
    failures = []
    for (method, url, _base, _fields), body in itertools.product(write_endpoints, RAW_BODIES):
        response = _post(mdm_a, method, url, body)
        if response.status_code >= 500:
            failures.append((method, url, body[:40], response.status_code))
    assert failures == []


def test_no_bad_field_value_gives_a_500_on_any_write_endpoint(mdm_a, write_endpoints, quiet_request_log):
    failures = []
    for method, url, base, fields in write_endpoints:
        for value in NASTY_VALUES:
            bodies = [dict.fromkeys(fields, value), [{**base, fields[0]: value}] * 2]
            bodies += [{**base, field: value} for field in fields]
            for body in bodies:
                response = _post(mdm_a, method, url, _encode(body))
                if response.status_code >= 500:
                    failures.append((method, url, str(body)[:80], response.status_code))
    assert failures == []


def test_no_bad_query_parameter_gives_a_500_on_any_list(mdm_a, device_a, quiet_request_log):
    lists = [
        "devices",
        "fleets",
        "models",
        "builds",
        "battery-events",
        "compliance/summary",
        "compliance/time-to-patch",
    ]
    parameters = [
        "compliance_status",
        "model",
        "model_id",
        "fleet",
        "fleet_id",
        "current_build",
        "patch_level_before",
        "last_check_in_before",
        "battery_status",
        "waived",
        "retired",
        "serial",
        "imei",
        "device_id",
        "kind",
        "occurred_after",
        "occurred_before",
        "private",
        "revoked",
        "released_after",
        "slug",
        "name",
        "manufacturer",
        "security_support_until_before",
        "build_number",
        "channel",
        "ordering",
        "page_size",
        "cursor",
    ]
    values = ["", "\x00", "9" * 40, "9" * 5000, "-1", "2024-02-30", "x" * 3000, "NaN", "%", "🔥", "true"]
    failures = []
    for path, parameter, value in itertools.product(lists, parameters, values):
        response = mdm_a.get(f"/api/v1/{path}/", {parameter: value})
        if response.status_code >= 500:
            failures.append((path, parameter, value[:20], response.status_code))
    assert failures == []


@pytest.mark.parametrize("value", ["%00", "9" * 40, "x" * 3000, "🔥", "%ff"])
def test_no_path_value_gives_a_500(mdm_a, device_a, value, quiet_request_log):
    for url in ("/api/v1/devices/by-serial/{v}/", "/api/v1/devices/by-imei/{v}/", "/api/v1/devices/{v}/"):
        assert mdm_a.get(url.format(v=value)).status_code < 500
    for url in ("/api/v1/devices/{v}/", "/api/v1/fleets/{v}/", "/api/v1/models/{v}/", "/api/v1/builds/{v}/"):
        assert mdm_a.get(url.format(v="9" * 40)).status_code == 404


# --- Found by fuzzing (tests/common/api/test_schemathesis.py) -------------------------------------------


def test_an_unknown_url_holding_an_encoded_newline_is_a_json_404(mdm_a):
    # "." in the catch-all pattern did not match "\n": Django's HTML 404 answered.
    response = mdm_a.get("/api/v1/models/%0A/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_post_to_an_unknown_url_is_a_json_404_not_a_csrf_page(db):
    # A real client sends no CSRF cookie: the catch-all view answered the CSRF middleware's HTML 403.
    client = APIClient(enforce_csrf_checks=True)
    response = client.post("/api/v1/devices/%C2%84/retire/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


@pytest.mark.parametrize("url", ["/api/v1/devices/", "/api/v1/battery-events/", "/api/v1/builds/"])
def test_options_on_an_endpoint_with_per_action_scopes_describes_it_instead_of_a_500(mdm_a, url):
    # DRF's metadata checks the permission of a copied POST request, whose action is "metadata".
    response = mdm_a.options(url)
    assert response.status_code == 200
    assert "POST" in response.json()["actions"]


def test_options_shows_no_write_actions_to_a_client_without_their_scope(reader_a, db):
    response = reader_a.options("/api/v1/battery-events/")
    assert response.status_code == 200
    assert "actions" not in response.json()


def test_a_number_too_large_for_a_float_is_malformed_json(mdm_a, device_a):
    # Python reads 1e400 as infinity, which the audit copy of a report could not store (a 409 on SQLite,
    # a 500 on PostgreSQL).
    body = b'{"serial": "A-0001", "reported_at": "%s", "extra": 1e400}' % timezone.now().isoformat().encode()
    response = mdm_a.post("/api/v1/checkins/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Malformed JSON")
    assert "1e400" in response.json()["detail"]
