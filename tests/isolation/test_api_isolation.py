"""Tenant isolation of the REST API, endpoint by endpoint, scope by scope.

``ENDPOINTS`` says, for every operation the URL resolver serves under /api/v1/, which scope it needs,
how to aim it at one organisation's row, what the owner gets, and what a client of the other
organisation gets when it aims at that row (always a 404 for a row it names in the URL, never a 403).
A route or method missing from the table fails ``test_every_api_operation_has_an_expectation``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.utils import timezone

from devices.models import CheckIn, Device
from fleet.choices import Scope
from tests.devices.checkins.test_parsers import amapi_device
from tests.isolation.conftest import SINGLE_SCOPES, World, api, assert_no_marker, organisation_rows, other
from tests.isolation.routes import PROBED_METHODS, api_operations, api_routes

V1 = "/api/v1"


def _report(world: World, key: str) -> dict:
    """A native check-in of the organisation ``key``'s device, newer than its last one."""
    device = world.org(key).device
    return {
        "serial": device.serial,
        "reported_at": (timezone.now() - dt.timedelta(minutes=5)).replace(microsecond=0).isoformat(),
        "build_number": world.public_build.build_number,
        "android_version": "14",
        "security_patch_level": (timezone.now().date() - dt.timedelta(days=30)).isoformat(),
        "battery_level": 70,
    }


def _amapi(world: World, key: str) -> dict:
    resource = amapi_device()
    resource["hardwareInfo"].update(
        serialNumber=world.org(key).device.serial, brand="Crosscall", manufacturer="Crosscall", model="Core-Z5"
    )
    resource["networkInfo"] = {}
    resource["lastStatusReportTime"] = (timezone.now() - dt.timedelta(minutes=4)).isoformat()
    return resource


def _envelope(device: dict, message_id: str = "4242424242") -> dict:
    return {
        "message": {
            "attributes": {"notificationType": "STATUS_REPORT"},
            "data": base64.b64encode(json.dumps(device).encode()).decode(),
            "messageId": message_id,
            "publishTime": timezone.now().isoformat(),
        },
        "subscription": "projects/p/subscriptions/s",
    }


def _headwind(world: World, key: str) -> dict:
    return {"serial": world.org(key).device.serial, "model": "Core-Z5", "androidVersion": "14", "batteryLevel": 60}


def _results(payload: Any) -> list[dict]:
    return payload["results"] if isinstance(payload, dict) else payload


def _ids(payload: Any) -> set[int]:
    return {item["id"] for item in _results(payload)}


@dataclass(frozen=True)
class Endpoint:
    """One API operation and what each persona gets from it."""

    name: str
    method: str
    #: Scope the token needs; None for the public schema and its documentation.
    scope: str | None
    #: The URL aimed at organisation ``key``'s row (or its collection).
    path: Callable[[World, str], str]
    #: Status for the owner, with the right scope.
    ok: int = 200
    body: Callable[[World, str], Any] | None = None
    #: The ids a read answers to the owner (None: a catalogue or a write, checked otherwise).
    own_ids: Callable[[World, str], set[int]] | None = None
    read_ids: Callable[[Any], set[int]] = _ids
    #: What a client of the other organisation gets when it aims this at the row of ``key``;
    #: None when the operation names no row (a collection read, the public schema).
    foreign: int | None = None
    #: The field a 400 names when the body refers to the other organisation's row.
    foreign_field: str | None = None
    #: Authenticated by a push secret in its URL, not by a token: its own tests below.
    push: bool = False

    @property
    def id(self) -> str:
        return f"{self.method} {self.name}"

    @property
    def writes(self) -> bool:
        return self.method not in {"GET", "HEAD", "OPTIONS"}

    def call(self, client: Any, world: World, key: str) -> Any:
        body = self.body(world, key) if self.body else None
        if self.method == "GET":
            return client.get(self.path(world, key), body)
        return getattr(client, self.method.lower())(self.path(world, key), body, format="json")


ENDPOINTS = [
    # --- Fleets ---
    Endpoint("fleet-list", "GET", Scope.READ, lambda w, k: f"{V1}/fleets/", own_ids=lambda w, k: {w.org(k).fleet.pk}),
    Endpoint("fleet-detail", "GET", Scope.READ, lambda w, k: f"{V1}/fleets/{w.org(k).fleet.pk}/", foreign=404),
    # --- The shared catalogue: models are the same for everyone ---
    Endpoint("devicemodel-list", "GET", Scope.READ, lambda w, k: f"{V1}/models/"),
    Endpoint("devicemodel-detail", "GET", Scope.READ, lambda w, k: f"{V1}/models/{w.phone_model.pk}/"),
    # Aliases are the catalogue's too (shared): adding one needs `catalogue` and touches no organisation's rows.
    Endpoint(
        "devicemodel-aliases",
        "POST",
        Scope.CATALOGUE,
        lambda w, k: f"{V1}/models/{w.phone_model.pk}/aliases/",
        ok=201,
        body=lambda w, k: {"name": f"CZ5-{k.upper()}"},
    ),
    Endpoint(
        "devicemodel-manufacturer-aliases",
        "POST",
        Scope.CATALOGUE,
        lambda w, k: f"{V1}/models/{w.phone_model.pk}/manufacturer-aliases/",
        ok=201,
        body=lambda w, k: {"name": f"Crosscall SAS {k.upper()}"},
    ),
    # --- Builds: public ones and the organisation's private ones ---
    Endpoint(
        "osbuild-list",
        "GET",
        Scope.READ,
        lambda w, k: f"{V1}/builds/",
        own_ids=lambda w, k: {w.public_build.pk, w.org(k).build.pk},
    ),
    Endpoint(
        "osbuild-list",
        "POST",
        Scope.CATALOGUE,
        lambda w, k: f"{V1}/builds/",
        ok=201,
        # Aimed at the other organisation: the same build number as its private build, which stays its own.
        body=lambda w, k: {
            "model": w.phone_model.pk,
            "build_number": w.a.build.build_number.replace(".1", ".2") if k == "a" else w.b.build.build_number,
            "security_patch_level": "2024-01-05",
        },
        foreign=201,
    ),
    Endpoint("osbuild-detail", "GET", Scope.READ, lambda w, k: f"{V1}/builds/{w.org(k).build.pk}/", foreign=404),
    Endpoint(
        "osbuild-revoke", "POST", Scope.CATALOGUE, lambda w, k: f"{V1}/builds/{w.org(k).build.pk}/revoke/", foreign=404
    ),
    # --- Compliance read-outs ---
    Endpoint(
        "compliance-summary",
        "GET",
        Scope.READ,
        lambda w, k: f"{V1}/compliance/summary/",
        own_ids=lambda w, k: {w.org(k).fleet.pk},
        read_ids=lambda payload: {row["fleet"]["id"] for row in payload["fleets"] if row["fleet"]},
    ),
    Endpoint(
        "compliance-time-to-patch",
        "GET",
        Scope.READ,
        lambda w, k: f"{V1}/compliance/time-to-patch/?model={w.phone_model.pk}",
        own_ids=lambda w, k: {w.public_build.pk, w.org(k).build.pk},
        read_ids=lambda payload: {row["build"]["id"] for row in payload},
    ),
    # --- Devices ---
    Endpoint(
        "device-list", "GET", Scope.READ, lambda w, k: f"{V1}/devices/", own_ids=lambda w, k: {w.org(k).device.pk}
    ),
    Endpoint(
        "device-list",
        "POST",
        Scope.ENROL,
        lambda w, k: f"{V1}/devices/",
        ok=201,
        body=lambda w, k: {"serial": "NEW-SERIAL-1", "fleet": w.org(k).fleet.pk},
        foreign=400,
        foreign_field="fleet",
    ),
    Endpoint("device-detail", "GET", Scope.READ, lambda w, k: f"{V1}/devices/{w.org(k).device.pk}/", foreign=404),
    Endpoint(
        "device-detail",
        "PATCH",
        Scope.ENROL,
        lambda w, k: f"{V1}/devices/{w.org(k).device.pk}/",
        body=lambda w, k: {"assignee": "Mallory"},
        foreign=404,
    ),
    Endpoint(
        "device-retire", "POST", Scope.ENROL, lambda w, k: f"{V1}/devices/{w.org(k).device.pk}/retire/", foreign=404
    ),
    Endpoint(
        "device-by-serial",
        "GET",
        Scope.READ,
        lambda w, k: f"{V1}/devices/by-serial/{w.org(k).device.serial}/",
        foreign=404,
    ),
    Endpoint(
        "device-by-imei", "GET", Scope.READ, lambda w, k: f"{V1}/devices/by-imei/{w.org(k).device.imei}/", foreign=404
    ),
    # --- Battery events ---
    Endpoint(
        "batteryevent-list",
        "GET",
        Scope.READ,
        lambda w, k: f"{V1}/battery-events/",
        own_ids=lambda w, k: {w.org(k).battery_event.pk},
    ),
    Endpoint(
        "batteryevent-list",
        "POST",
        Scope.REPORT,
        lambda w, k: f"{V1}/battery-events/",
        ok=201,
        body=lambda w, k: {
            "device": w.org(k).device.pk,
            "kind": "replacement",
            "part_serial": "NEW-BAT",
            "occurred_at": timezone.now().isoformat(),
        },
        foreign=400,
        foreign_field="device",
    ),
    Endpoint(
        "batteryevent-detail",
        "GET",
        Scope.READ,
        lambda w, k: f"{V1}/battery-events/{w.org(k).battery_event.pk}/",
        foreign=404,
    ),
    # --- Observed builds: the organisation's own only ---
    Endpoint(
        "observedbuild-list",
        "GET",
        Scope.READ,
        lambda w, k: f"{V1}/observed-builds/",
        own_ids=lambda w, k: {w.org(k).observed_build.pk},
    ),
    Endpoint(
        "observedbuild-detail",
        "GET",
        Scope.READ,
        lambda w, k: f"{V1}/observed-builds/{w.org(k).observed_build.pk}/",
        foreign=404,
    ),
    Endpoint(
        "observedbuild-promote",
        "POST",
        Scope.CATALOGUE,
        lambda w, k: f"{V1}/observed-builds/{w.org(k).observed_build.pk}/promote/",
        foreign=404,
    ),
    Endpoint(
        "observedbuild-revoke",
        "POST",
        Scope.CATALOGUE,
        lambda w, k: f"{V1}/observed-builds/{w.org(k).observed_build.pk}/revoke/",
        foreign=404,
    ),
    # --- Check-ins: a serial of the other organisation is an unknown device of one's own, enrolled with
    # the `enrol` scope (the all-scope client); the other organisation's device is never touched. ---
    Endpoint(
        "api-checkins",
        "GET",
        Scope.READ,
        lambda w, k: f"{V1}/checkins/?device={w.org(k).device.pk}",
        own_ids=lambda w, k: {w.org(k).check_in.pk},
        foreign=404,
    ),
    Endpoint("api-checkins", "POST", Scope.REPORT, lambda w, k: f"{V1}/checkins/", ok=201, body=_report, foreign=201),
    Endpoint(
        "api-ingest-amapi", "POST", Scope.REPORT, lambda w, k: f"{V1}/ingest/amapi/", ok=201, body=_amapi, foreign=201
    ),
    Endpoint(
        "api-ingest-headwind",
        "POST",
        Scope.REPORT,
        lambda w, k: f"{V1}/ingest/headwind/",
        ok=201,
        body=_headwind,
        foreign=201,
    ),
    Endpoint(
        "api-ingest-amapi-push",
        "POST",
        Scope.REPORT,
        lambda w, k: f"{V1}/ingest/amapi/push/{w.org(k).push_client.push_id}/?token={w.org(k).tokens['push']}",
        ok=201,
        body=lambda w, k: _envelope(_amapi(w, k)),
        push=True,
    ),
    # --- Rejected Pub/Sub messages ---
    Endpoint(
        "rejectedmessage-list",
        "GET",
        Scope.READ,
        lambda w, k: f"{V1}/rejected-messages/",
        own_ids=lambda w, k: {w.org(k).rejected_message.pk},
    ),
    # --- Public: the schema describes the API and holds no data ---
    Endpoint("api-schema", "GET", None, lambda w, k: f"{V1}/schema/"),
    Endpoint("api-docs", "GET", None, lambda w, k: f"{V1}/docs/"),
]

PROTECTED = [e for e in ENDPOINTS if e.scope is not None and not e.push]
READS = [e for e in PROTECTED if not e.writes]
WRITES = [e for e in PROTECTED if e.writes]
AIMED = [e for e in PROTECTED if e.foreign is not None]


def _param(endpoints: list[Endpoint]) -> Any:
    return pytest.mark.parametrize("endpoint", endpoints, ids=[e.id for e in endpoints])


# --- The table covers the API -------------------------------------------------------------------


def test_every_api_operation_has_an_expectation():
    served = api_operations()
    expected = {(e.name, e.method) for e in ENDPOINTS}
    assert not served - expected, f"not covered: {sorted(served - expected)}"
    assert not expected - served, f"no longer served (remove from ENDPOINTS): {sorted(expected - served)}"


def test_the_public_schema_and_docs_need_no_token_and_hold_no_data(world):
    for endpoint in (e for e in ENDPOINTS if e.scope is None):
        response = endpoint.call(api(None), world, "a")
        assert response.status_code == 200, endpoint.id
        assert_no_marker(response.content, "a", endpoint.id)
        assert_no_marker(response.content, "b", endpoint.id)


def test_methods_an_endpoint_does_not_offer_are_405_whatever_the_scopes(world):
    client = api(world.a.tokens["all"])
    for route in api_routes():
        offered = route.methods()
        for method in sorted(set(PROBED_METHODS) - offered):
            response = getattr(client, method.lower())(route.sample_path(), {}, format="json")
            assert response.status_code == 405, f"{method} {route.name}: {response.status_code}"


# --- Who may call: a valid token, with the scope the operation needs -----------------------------


@_param(PROTECTED)
def test_without_a_valid_token_every_operation_is_401_and_changes_nothing(world, endpoint):
    # (A read changes nothing whatever its outcome: the snapshots are for writes.)
    before = organisation_rows(world.a.org) if endpoint.writes else None
    for token in (None, world.a.tokens["revoked"], world.a.tokens["expired"], "not-a-token"):
        response = endpoint.call(api(token), world, "a")
        assert response.status_code == 401, (endpoint.id, token, response.status_code)
        assert_no_marker(response.content, "a", endpoint.id)
    if endpoint.writes:
        assert organisation_rows(world.a.org) == before


@_param(PROTECTED)
@pytest.mark.parametrize("scope", SINGLE_SCOPES)
def test_a_token_reaches_an_operation_only_with_the_scope_it_needs(world, endpoint, scope):
    before = organisation_rows(world.a.org) if endpoint.writes else None
    response = endpoint.call(api(world.a.tokens[scope]), world, "a")
    assert_no_marker(response.content, "b", endpoint.id)
    if scope == endpoint.scope:
        assert response.status_code == endpoint.ok, (endpoint.id, response.status_code, response.content[:500])
        return
    assert response.status_code == 403, (endpoint.id, scope, response.status_code)
    assert endpoint.scope in response.json()["detail"]
    if endpoint.writes:
        assert organisation_rows(world.a.org) == before


# --- What each organisation sees -----------------------------------------------------------------


@_param([e for e in READS if e.own_ids is not None])
@pytest.mark.parametrize("key", ["a", "b"])
def test_a_read_answers_with_the_clients_own_rows_and_nothing_of_the_other_organisation(world, endpoint, key):
    response = endpoint.call(api(world.org(key).tokens[Scope.READ]), world, key)
    assert response.status_code == 200, (endpoint.id, response.content[:300])
    assert endpoint.read_ids(response.json()) == endpoint.own_ids(world, key)
    assert_no_marker(response.content, other(key), endpoint.id)


@pytest.mark.parametrize("key", ["a", "b"])
def test_the_shared_catalogue_is_the_same_for_both_organisations(world, key):
    client = api(world.org(key).tokens[Scope.READ])
    for path in (f"{V1}/models/", f"{V1}/models/{world.phone_model.pk}/"):
        response = client.get(path)
        assert response.status_code == 200
        assert "Core-Z5" in response.content.decode()
        assert_no_marker(response.content, other(key), path)


@_param(AIMED)
@pytest.mark.parametrize("key", ["a", "b"])
def test_aimed_at_the_other_organisations_row_an_operation_finds_nothing_and_changes_nothing(world, endpoint, key):
    """A 404 (never a 403: the row does not exist for this client), or a 400 naming the field that refers to
    it; and the other organisation's rows are exactly as before."""
    target = other(key)
    before = organisation_rows(world.org(target).org)
    response = endpoint.call(api(world.org(key).tokens["all"]), world, target)
    assert response.status_code == endpoint.foreign, (endpoint.id, response.status_code, response.content[:300])
    if endpoint.foreign == 404:
        assert_no_marker(response.content, target, endpoint.id)
    if endpoint.foreign_field:
        assert endpoint.foreign_field in response.json(), response.json()
    assert organisation_rows(world.org(target).org) == before


@pytest.mark.parametrize("endpoint_name", ["api-checkins", "api-ingest-amapi", "api-ingest-headwind"])
def test_a_report_for_a_serial_of_the_other_organisation_never_reaches_its_device(world, endpoint_name):
    endpoint = next(e for e in ENDPOINTS if e.name == endpoint_name and e.method == "POST")
    device_b = world.b.device
    # Without `enrol`, the serial is an unknown device of A: refused, per item.
    response = endpoint.call(api(world.a.tokens[Scope.REPORT]), world, "b")
    assert response.status_code == 400, response.content[:300]
    assert_no_marker(response.content.replace(device_b.serial.encode(), b""), "b", endpoint_name)
    # With `enrol`, A gets a device of its own with that serial; B's keeps its history alone.
    response = endpoint.call(api(world.a.tokens["all"]), world, "b")
    assert response.status_code == 201, response.content[:300]
    enrolled = Device.objects.get(pk=response.json()["device_id"])
    assert enrolled.organisation_id == world.a.org.pk
    assert CheckIn.objects.filter(device=device_b).count() == 1


def test_a_report_of_the_other_organisations_private_build_number_is_not_linked_to_that_build(world):
    report = {**_report(world, "a"), "build_number": world.b.build.build_number}
    response = api(world.a.tokens[Scope.REPORT]).post(f"{V1}/checkins/", report, format="json")
    assert response.status_code == 201, response.content
    check_in = CheckIn.objects.filter(device=world.a.device).latest("reported_at")
    assert check_in.build_id is None
    device = Device.objects.get(pk=world.a.device.pk)
    assert device.current_build_id != world.b.build.pk


def test_moving_an_own_device_into_the_other_organisations_fleet_is_a_400_naming_the_fleet(world):
    before = organisation_rows(world.b.org)
    for fleet in (world.b.fleet.pk, world.b.fleet.slug):
        response = api(world.a.tokens[Scope.ENROL]).patch(
            f"{V1}/devices/{world.a.device.pk}/", {"fleet": fleet}, format="json"
        )
        assert response.status_code == 400
        assert "fleet" in response.json()
    assert Device.objects.get(pk=world.a.device.pk).fleet_id == world.a.fleet.pk
    assert organisation_rows(world.b.org) == before


def test_a_battery_event_for_the_other_organisations_serial_is_a_400_naming_the_device(world):
    before = organisation_rows(world.b.org)
    body = {
        "device": world.b.device.serial,
        "kind": "reading",
        "health_pct": 40,
        "occurred_at": timezone.now().isoformat(),
    }
    response = api(world.a.tokens[Scope.REPORT]).post(f"{V1}/battery-events/", body, format="json")
    assert response.status_code == 400
    assert "device" in response.json()
    assert organisation_rows(world.b.org) == before


def test_enrolling_the_other_organisations_serial_and_imei_answers_as_for_new_ones(world):
    """No existence oracle: A learns nothing about B's devices from enrolling the same identifiers."""
    body = {"serial": world.b.device.serial, "imei": world.b.device.imei}
    response = api(world.a.tokens[Scope.ENROL]).post(f"{V1}/devices/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["id"] != world.b.device.pk
    assert Device.objects.get(pk=world.b.device.pk).organisation_id == world.b.org.pk


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/devices/", lambda w: {"fleet_id": w.b.fleet.pk}),
        ("/devices/", lambda w: {"fleet": w.b.fleet.slug}),
        ("/devices/", lambda w: {"serial": w.b.device.serial}),
        ("/devices/", lambda w: {"imei": w.b.device.imei}),
        ("/battery-events/", lambda w: {"device_id": w.b.device.pk}),
        ("/battery-events/", lambda w: {"serial": w.b.device.serial}),
        ("/builds/", lambda w: {"build_number": w.b.build.build_number}),
        ("/fleets/", lambda w: {"slug": w.b.fleet.slug}),
        ("/checkins/", lambda w: {"serial": w.b.device.serial}),
        ("/checkins/", lambda w: {"imei": w.b.device.imei}),
    ],
)
def test_filtering_on_the_other_organisations_identifiers_finds_nothing(world, path, params):
    response = api(world.a.tokens[Scope.READ]).get(f"{V1}{path}", params(world))
    assert response.status_code in (200, 404), response.content
    if response.status_code == 200:
        assert _results(response.json()) == []
    assert_no_marker(response.content, "b", path)


# --- The Pub/Sub push endpoint: its own credentials, in the URL -----------------------------------


def _push(world: World, endpoint_of: str, secret_of: str, *, token_key: str = "push") -> Any:
    push_id = world.org(endpoint_of).push_client.push_id
    secret = world.org(secret_of).tokens[token_key]
    return api(None).post(
        f"{V1}/ingest/amapi/push/{push_id}/?token={secret}", _envelope(_amapi(world, endpoint_of)), format="json"
    )


@pytest.mark.parametrize("key", ["a", "b"])
def test_a_push_with_the_endpoints_own_secret_reaches_its_own_organisation_only(world, key):
    before = organisation_rows(world.org(other(key)).org)
    response = _push(world, key, key)
    assert response.status_code == 201, response.content[:300]
    assert Device.objects.get(pk=response.json()["device_id"]).organisation_id == world.org(key).org.pk
    assert_no_marker(response.content, other(key), "push")
    assert organisation_rows(world.org(other(key)).org) == before


def test_the_other_organisations_push_secret_or_any_token_is_refused_on_a_push_endpoint(world):
    before = organisation_rows(world.a.org)
    push_id = world.a.push_client.push_id
    url = f"{V1}/ingest/amapi/push/{push_id}/"
    body = _envelope(_amapi(world, "a"))
    answers = [
        api(None).post(f"{url}?token={world.b.tokens['push']}", body, format="json"),
        # B's endpoint named with A's secret, and A's secret on an endpoint that does not exist.
        api(None).post(
            f"{V1}/ingest/amapi/push/{world.b.push_client.push_id}/?token={world.a.tokens['push']}", body, format="json"
        ),
        api(None).post(f"{V1}/ingest/amapi/push/nobody/?token={world.a.tokens['push']}", body, format="json"),
        # A FleetPatch token, even with every scope, is not a Pub/Sub credential.
        api(world.a.tokens["all"]).post(url, body, format="json"),
        api(None).post(url, body, format="json"),
    ]
    for response in answers:
        assert response.status_code == 401, response.content[:300]
        assert response.json()["detail"]
        assert_no_marker(response.content, "b", "push")
    assert organisation_rows(world.a.org) == before


def test_a_push_client_without_the_report_scope_is_403(world):
    response = _push(world, "a", "a", token_key="push_reader")
    assert response.status_code == 401  # the reader's secret is not the push client's
    push_id = world.a.push_reader.push_id
    response = api(None).post(
        f"{V1}/ingest/amapi/push/{push_id}/?token={world.a.tokens['push_reader']}",
        _envelope(_amapi(world, "a")),
        format="json",
    )
    assert response.status_code == 403
    assert "report" in response.json()["detail"]
