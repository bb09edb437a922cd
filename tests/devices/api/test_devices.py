"""Devices: read by id, serial and IMEI; enrol; reassign; retire — always within the client's organisation."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from devices.models import Device
from tests.factories import DeviceFactory, DeviceModelFactory, FleetFactory, imei_with_check_digit

VALID_IMEI = imei_with_check_digit("49015420323751")


def results(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


# --- Reading -------------------------------------------------------------------------------------


def test_a_device_shows_its_compliance_battery_and_links(mdm_a, device_a, public_build):
    Device.objects.filter(pk=device_a.pk).update(
        current_build=public_build, latest_build=public_build, security_patch_level=dt.date(2024, 1, 5)
    )
    body = mdm_a.get(f"/api/v1/devices/{device_a.pk}/").json()
    assert body["serial"] == "A-0001"
    assert body["model"] == {"id": device_a.model_id, "slug": "core-z5", "name": "Core-Z5", "manufacturer": "Crosscall"}
    assert body["fleet"] == {"id": device_a.fleet_id, "slug": "north", "name": "North"}
    assert body["current_build"]["build_number"] == "UQ1A.240105.004"
    assert body["target_build"]["id"] == public_build.pk
    assert body["patch_age_days"] == (timezone.now().date() - dt.date(2024, 1, 5)).days
    for field in ("compliance_status", "status_since", "builds_behind", "battery_status", "waived"):
        assert field in body


def test_a_device_is_found_by_serial_and_by_imei(mdm_a, device_a):
    assert mdm_a.get("/api/v1/devices/by-serial/A-0001/").json()["id"] == device_a.pk
    assert mdm_a.get(f"/api/v1/devices/by-imei/{device_a.imei}/").json()["id"] == device_a.pk


def test_an_unknown_serial_or_imei_is_404(mdm_a, device_a):
    assert mdm_a.get("/api/v1/devices/by-serial/NOPE/").status_code == 404
    assert mdm_a.get(f"/api/v1/devices/by-imei/{VALID_IMEI}/").status_code == 404


# --- Tenant isolation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["/api/v1/devices/{id}/", "/api/v1/devices/by-serial/{serial}/", "/api/v1/devices/by-imei/{imei}/"],
    ids=["id", "serial", "imei"],
)
def test_a_client_of_b_cannot_read_a_device_of_a(mdm_b, device_a, url):
    response = mdm_b.get(url.format(id=device_a.pk, serial=device_a.serial, imei=device_a.imei))
    assert response.status_code == 404
    assert "A-0001" not in response.content.decode()


def test_a_client_of_b_cannot_update_a_device_of_a(mdm_b, device_a):
    response = mdm_b.patch(f"/api/v1/devices/{device_a.pk}/", {"assignee": "Mallory"}, format="json")
    assert response.status_code == 404
    device_a.refresh_from_db()
    assert device_a.assignee == ""


def test_a_client_of_b_cannot_retire_a_device_of_a(mdm_b, device_a):
    assert mdm_b.post(f"/api/v1/devices/{device_a.pk}/retire/").status_code == 404
    device_a.refresh_from_db()
    assert device_a.retired_at is None


def test_devices_of_a_never_appear_in_the_list_of_b(mdm_b, device_a, device_b):
    assert [d["serial"] for d in results(mdm_b.get("/api/v1/devices/"))] == ["B-0001"]
    assert results(mdm_b.get("/api/v1/devices/?serial=A-0001")) == []


def test_a_client_of_b_cannot_enrol_into_a_fleet_of_a(mdm_b, fleet_a, phone_model):
    response = mdm_b.post("/api/v1/devices/", {"serial": "X1", "fleet": fleet_a.pk}, format="json")
    assert response.status_code == 400
    assert "fleet" in response.json()
    response = mdm_b.post("/api/v1/devices/", {"serial": "X1", "fleet": "north"}, format="json")
    assert response.status_code == 400


def test_a_client_of_b_cannot_move_its_device_into_a_fleet_of_a(mdm_b, device_b, fleet_a):
    response = mdm_b.patch(f"/api/v1/devices/{device_b.pk}/", {"fleet": fleet_a.pk}, format="json")
    assert response.status_code == 400
    assert "fleet" in response.json()


def test_the_same_serial_may_exist_in_two_organisations(mdm_b, device_a):
    response = mdm_b.post("/api/v1/devices/", {"serial": device_a.serial, "imei": device_a.imei}, format="json")
    assert response.status_code == 201, response.content


# --- Enrolment -----------------------------------------------------------------------------------


def test_enrolling_a_device_creates_it_in_the_clients_organisation(mdm_a, org_a, fleet_a, phone_model):
    response = mdm_a.post(
        "/api/v1/devices/",
        {
            "serial": "NEW-1",
            "imei": VALID_IMEI,
            "asset_tag": "TAG-9",
            "assignee": "Agent 9",
            "model": "Crosscall Core-Z5",
            "fleet": "north",
            "channel": "beta",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    device = Device.objects.get(serial="NEW-1")
    assert device.organisation == org_a
    assert (device.model, device.fleet, device.channel, device.imei) == (phone_model, fleet_a, "beta", VALID_IMEI)
    assert response.json()["compliance_status"] == "unknown"
    assert response.json()["id"] == device.pk


@pytest.mark.parametrize("model", ["{id}", "core-z5", "crosscall core-z5", "Core-Z5", "COREZ5", "Crosscall CoreZ5"])
def test_a_model_is_given_by_id_slug_or_full_name(mdm_a, phone_model, model):
    value = phone_model.pk if model == "{id}" else model
    response = mdm_a.post("/api/v1/devices/", {"serial": "NEW-2", "model": value}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["model"]["id"] == phone_model.pk


def test_an_unknown_model_is_a_field_error(mdm_a, phone_model):
    response = mdm_a.post("/api/v1/devices/", {"serial": "NEW-3", "model": "Nokia 3310"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["model"]


def test_an_unknown_model_or_fleet_is_named_with_the_value_given(mdm_a, phone_model):
    # DRF fills messages with str.format: the %(value)s placeholders FleetPatch writes stayed in the answer.
    response = mdm_a.post("/api/v1/devices/", {"serial": "NEW-4", "model": "Nokia 3310", "fleet": []}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "model": ["No device model matches 'Nokia 3310'."],
        "fleet": ["Give an id (a whole number) or a slug (text)."],
    }


def test_an_unknown_model_is_explained_in_french_too(mdm_a, phone_model):
    response = mdm_a.post(
        "/api/v1/devices/", {"serial": "NEW-5", "model": "Nokia 3310"}, format="json", HTTP_ACCEPT_LANGUAGE="fr"
    )
    assert response.json() == {"model": ["Aucun élément « modèle d’appareil » ne correspond à 'Nokia 3310'."]}


def test_an_imei_with_a_bad_check_digit_is_refused_with_the_reason(mdm_a):
    bad = VALID_IMEI[:-1] + str((int(VALID_IMEI[-1]) + 1) % 10)
    response = mdm_a.post("/api/v1/devices/", {"serial": "NEW-4", "imei": bad}, format="json")
    assert response.status_code == 400
    assert "Luhn" in response.json()["imei"][0]


def test_enrolling_a_serial_already_enrolled_is_a_400_not_a_500(mdm_a, device_a):
    response = mdm_a.post("/api/v1/devices/", {"serial": device_a.serial}, format="json")
    assert response.status_code == 400
    assert "serial" in str(response.json())


def test_enrolling_an_imei_already_enrolled_is_a_400(mdm_a, device_a):
    response = mdm_a.post("/api/v1/devices/", {"serial": "OTHER", "imei": device_a.imei}, format="json")
    assert response.status_code == 400
    assert "IMEI" in str(response.json())


# --- Update and retirement -----------------------------------------------------------------------


def test_patch_changes_assignment_fields(mdm_a, device_a, org_a):
    other = FleetFactory(organisation=org_a, slug="south")
    response = mdm_a.patch(
        f"/api/v1/devices/{device_a.pk}/",
        {"fleet": "south", "asset_tag": "T-1", "assignee": "Ada", "channel": "beta"},
        format="json",
    )
    assert response.status_code == 200, response.content
    device_a.refresh_from_db()
    assert (device_a.fleet, device_a.asset_tag, device_a.assignee, device_a.channel) == (other, "T-1", "Ada", "beta")


def test_patch_can_take_a_device_out_of_its_fleet(mdm_a, device_a):
    assert mdm_a.patch(f"/api/v1/devices/{device_a.pk}/", {"fleet": None}, format="json").status_code == 200
    device_a.refresh_from_db()
    assert device_a.fleet is None


@pytest.mark.parametrize("field", ["compliance_status", "serial", "security_patch_level", "waived"])
def test_compliance_and_reported_fields_are_read_only(mdm_a, device_a, field):
    response = mdm_a.patch(f"/api/v1/devices/{device_a.pk}/", {field: "up_to_date"}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    device_a.refresh_from_db()
    assert device_a.compliance_status == "unknown"


def test_put_is_not_offered(mdm_a, device_a):
    assert mdm_a.put(f"/api/v1/devices/{device_a.pk}/", {"assignee": "x"}, format="json").status_code == 405


def test_retiring_sets_retired_at_once(mdm_a, device_a):
    first = mdm_a.post(f"/api/v1/devices/{device_a.pk}/retire/")
    assert first.status_code == 200
    device_a.refresh_from_db()
    retired_at = device_a.retired_at
    assert retired_at is not None
    assert mdm_a.post(f"/api/v1/devices/{device_a.pk}/retire/").status_code == 200
    device_a.refresh_from_db()
    assert device_a.retired_at == retired_at


# --- Filters (one test each) ---------------------------------------------------------------------


@pytest.fixture
def two_devices(org_a, fleet_a, phone_model, public_build):
    """`match` fits every filter below; `other` fits none."""
    other_model = DeviceModelFactory(slug="other-phone", name="Other Phone")
    other_fleet = FleetFactory(organisation=org_a, slug="south")
    now = timezone.now()
    match = DeviceFactory(
        organisation=org_a,
        serial="MATCH",
        model=phone_model,
        fleet=fleet_a,
        current_build=public_build,
        reported_build_number=public_build.build_number,
        security_patch_level=dt.date(2023, 1, 5),
        last_check_in_at=now - dt.timedelta(days=40),
        compliance_status="critical",
        battery_status="replace_now",
        is_waived=True,
        retired_at=now,
    )
    other = DeviceFactory(
        organisation=org_a,
        serial="OTHER",
        model=other_model,
        fleet=other_fleet,
        reported_build_number="ZZZ",
        security_patch_level=dt.date(2024, 6, 5),
        last_check_in_at=now,
        compliance_status="up_to_date",
        battery_status="ok",
    )
    return match, other


@pytest.mark.parametrize(
    "query",
    [
        "compliance_status=critical",
        "compliance_status=critical&compliance_status=behind",
        "model=core-z5",
        "model=Core-Z5",
        "model=COREZ5",
        "model=Crosscall%20Core-Z5",
        "model_id={model_id}",
        "fleet=north",
        "fleet_id={fleet_id}",
        "current_build=UQ1A.240105.004",
        "patch_level_before=2024-01-01",
        "last_check_in_before={before}",
        "battery_status=replace_now",
        "waived=true",
        "retired=true",
        "serial=MATCH",
        "imei={imei}",
    ],
)
def test_each_device_filter_selects_only_matching_devices(mdm_a, two_devices, query):
    match, _other = two_devices
    before = (timezone.now() - dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")
    url = "/api/v1/devices/?" + query.format(
        model_id=match.model_id, fleet_id=match.fleet_id, before=before, imei=match.imei
    )
    assert [d["serial"] for d in results(mdm_a.get(url))] == ["MATCH"]


def test_filters_negate(mdm_a, two_devices):
    assert [d["serial"] for d in results(mdm_a.get("/api/v1/devices/?waived=false&retired=false"))] == ["OTHER"]


@pytest.mark.parametrize(
    "query",
    [
        "compliance_status=nonsense",
        "patch_level_before=2024-02-30",
        "last_check_in_before=yesterday",
        "model_id=abc",
        "model_id=1.5",
        "fleet_id=" + "9" * 40,
        "waived=maybe",
    ],
)
def test_a_bad_filter_value_is_a_400_naming_the_filter(mdm_a, two_devices, query):
    response = mdm_a.get("/api/v1/devices/?" + query)
    assert response.status_code == 400, response.content
    assert query.split("=")[0] in response.json()


# --- Pagination and ordering ---------------------------------------------------------------------


def test_pages_follow_the_cursor_without_gaps_or_repeats(mdm_a, org_a):
    serials = sorted(DeviceFactory(organisation=org_a).serial for _ in range(7))
    seen: list[str] = []
    url = "/api/v1/devices/?page_size=3&ordering=serial"
    while url:
        body = mdm_a.get(url).json()
        seen += [d["serial"] for d in body["results"]]
        url = body["next"]
    assert seen == serials


def test_reverse_ordering_and_default_ordering_by_id(mdm_a, org_a):
    devices = [DeviceFactory(organisation=org_a) for _ in range(3)]
    assert [d["id"] for d in results(mdm_a.get("/api/v1/devices/"))] == [d.pk for d in devices]
    assert [d["id"] for d in results(mdm_a.get("/api/v1/devices/?ordering=-id"))] == [d.pk for d in devices][::-1]


@pytest.mark.parametrize("query", ["ordering=assignee", "page_size=0", "page_size=501", "page_size=x"])
def test_ordering_and_page_size_are_bounded(mdm_a, device_a, query):
    response = mdm_a.get("/api/v1/devices/?" + query)
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()


@pytest.mark.parametrize("position", ["abc", "9" * 40, "-1e999", "\x00", "2024-02-30"])
def test_a_tampered_cursor_never_gives_a_500(mdm_a, device_a, position):
    cursor = base64.b64encode(f"p={position}".encode()).decode()
    for ordering in ("id", "serial"):
        response = mdm_a.get("/api/v1/devices/", {"cursor": cursor, "ordering": ordering})
        assert response.status_code in (200, 404), response.content


# --- Query counts --------------------------------------------------------------------------------


def _count_queries(client, url) -> int:
    client.get(url)  # the first request records last_used_at: not part of the steady state
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_a_device_page_costs_the_same_queries_for_5_or_50_devices(mdm_a, org_a, fleet_a, public_build):
    def make(n: int) -> None:
        for _ in range(n):
            DeviceFactory(
                organisation=org_a,
                fleet=fleet_a,
                model=public_build.model,
                current_build=public_build,
                latest_build=public_build,
            )

    make(5)
    few = _count_queries(mdm_a, "/api/v1/devices/")
    make(45)
    many = _count_queries(mdm_a, "/api/v1/devices/")
    assert few == many <= 3


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/api/v1/devices/", "last_check_in_before"),
        ("/api/v1/battery-events/", "occurred_before"),
        ("/api/v1/battery-events/", "occurred_after"),
        ("/api/v1/builds/", "released_after"),
    ],
)
def test_a_moment_with_a_utc_offset_postgresql_does_not_accept_is_converted_not_a_500(mdm_a, device_a, url, parameter):
    # ISO 8601 allows offsets up to ±23:59, PostgreSQL only ±15:59: the filter converts to UTC first.
    response = mdm_a.get(url, {parameter: "2072-11-29T19:04:10-17:20"})
    assert response.status_code == 200, response.content


def test_a_moment_before_year_one_in_utc_is_a_400_naming_the_filter(mdm_a, device_a):
    response = mdm_a.get("/api/v1/devices/", {"last_check_in_before": "0001-01-01T00:00:00+01:00"})
    assert response.status_code == 400
    assert list(response.json()) == ["last_check_in_before"]


def test_enrolling_a_placeholder_serial_is_a_400_naming_the_serial(mdm_a):
    response = mdm_a.post("/api/v1/devices/", {"serial": "unknown", "imei": "356938035643809"}, format="json")

    assert response.status_code == 400
    assert "placeholder" in response.json()["serial"][0]
