"""Fleets, device models and builds: what each client may read, and how it publishes and revokes its own builds."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from devices.models import Device
from tests.factories import DeviceModelFactory, FleetFactory, OSBuildFactory
from updates.models import OSBuild


def results(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


# --- Fleets --------------------------------------------------------------------------------------


def test_fleets_list_only_the_clients_organisation(mdm_b, fleet_a, fleet_b):
    assert [f["slug"] for f in results(mdm_b.get("/api/v1/fleets/"))] == ["south"]


def test_a_fleet_of_another_organisation_is_404(mdm_b, fleet_a):
    assert mdm_b.get(f"/api/v1/fleets/{fleet_a.pk}/").status_code == 404


@pytest.mark.parametrize(("query", "expected"), [("slug=north", ["north"]), ("name=eas", ["east"])])
def test_fleet_filters(mdm_a, org_a, fleet_a, query, expected):
    FleetFactory(organisation=org_a, name="East", slug="east")
    assert [f["slug"] for f in results(mdm_a.get("/api/v1/fleets/?" + query))] == expected


# --- Models --------------------------------------------------------------------------------------


def test_models_are_the_shared_catalogue(mdm_b, phone_model):
    body = results(mdm_b.get("/api/v1/models/"))
    assert [m["slug"] for m in body] == ["core-z5"]
    assert body[0]["manufacturer"] == {
        "id": phone_model.manufacturer_id,
        "slug": "crosscall",
        "name": "Crosscall",
        "aliases": [],
    }
    assert body[0]["aliases"] == []


def test_clients_cannot_add_models(mdm_a):
    response = mdm_a.post("/api/v1/models/", {"name": "X"}, format="json")
    assert response.status_code == 405


@pytest.mark.parametrize(
    "query", ["manufacturer=crosscall", "slug=core-z5", "name=core", "security_support_until_before=2031-01-01"]
)
def test_model_filters(mdm_a, phone_model, query):
    DeviceModelFactory(slug="old-one", name="Old One", security_support_until=dt.date(2035, 1, 1))
    assert [m["slug"] for m in results(mdm_a.get("/api/v1/models/?" + query))] == ["core-z5"]


# --- Builds --------------------------------------------------------------------------------------


@pytest.fixture
def builds(org_a, org_b, phone_model):
    return {
        "public": OSBuildFactory(model=phone_model, build_number="PUBLIC.1"),
        "a": OSBuildFactory(model=phone_model, build_number="A.1", organisation=org_a),
        "b": OSBuildFactory(model=phone_model, build_number="B.1", organisation=org_b),
    }


def test_builds_are_the_public_catalogue_and_the_clients_own_private_builds(mdm_a, builds):
    assert {b["build_number"] for b in results(mdm_a.get("/api/v1/builds/"))} == {"PUBLIC.1", "A.1"}


def test_a_private_build_of_another_organisation_is_404(mdm_a, builds):
    assert mdm_a.get(f"/api/v1/builds/{builds['b'].pk}/").status_code == 404
    assert mdm_a.get(f"/api/v1/builds/{builds['public'].pk}/").status_code == 200


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("model=core-z5", {"PUBLIC.1", "A.1"}),
        ("model=Other", {"OTHER.1"}),
        ("model_id={other}", {"OTHER.1"}),
        ("build_number=A.1", {"A.1"}),
        ("channel=beta", {"OTHER.1"}),
        ("private=true", {"A.1"}),
        ("private=false", {"PUBLIC.1", "OTHER.1"}),
        ("revoked=true", {"OTHER.1"}),
        ("released_after={yesterday}", {"OTHER.1"}),
    ],
)
def test_build_filters(mdm_a, builds, query, expected):
    other = DeviceModelFactory(name="Other", slug="other")
    OSBuildFactory(model=other, build_number="OTHER.1", channel="beta", is_revoked=True, released_at=timezone.now())
    yesterday = (timezone.now() - dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")
    url = "/api/v1/builds/?" + query.format(other=other.pk, yesterday=yesterday)
    assert {b["build_number"] for b in results(mdm_a.get(url))} == expected


def test_publishing_a_build_makes_a_private_build_and_relinks_devices(
    mdm_a, org_a, phone_model, device_a, django_capture_on_commit_callbacks
):
    Device.objects.filter(pk=device_a.pk).update(reported_build_number="INHOUSE.7")
    with django_capture_on_commit_callbacks(execute=True):
        response = mdm_a.post(
            "/api/v1/builds/",
            {"model": phone_model.pk, "build_number": "INHOUSE.7", "security_patch_level": "2024-05-05"},
            format="json",
        )
    assert response.status_code == 201, response.content
    build = OSBuild.objects.get(build_number="INHOUSE.7")
    assert build.organisation == org_a
    assert response.json()["private"] is True
    device_a.refresh_from_db()
    assert device_a.current_build == build  # linked by the model's recompute, after commit


def test_publishing_the_same_build_twice_is_a_400(mdm_a, phone_model):
    body = {"model": phone_model.pk, "build_number": "INHOUSE.8", "security_patch_level": "2024-05-05"}
    assert mdm_a.post("/api/v1/builds/", body, format="json").status_code == 201
    response = mdm_a.post("/api/v1/builds/", body, format="json")
    assert response.status_code == 400
    assert "build" in str(response.json()).lower()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"build_number": "X", "security_patch_level": "2024-02-30"}, "security_patch_level"),
        ({"build_number": "X", "security_patch_level": "2999-01-01"}, "security_patch_level"),
        ({"build_number": "X", "security_patch_level": "2024-01-01", "model": 10**30}, "model"),
        ({"build_number": "X", "security_patch_level": "2024-01-01", "channel": "nightly"}, "channel"),
        ({"security_patch_level": "2024-01-01"}, "build_number"),
    ],
)
def test_publishing_an_invalid_build_names_the_field(mdm_a, phone_model, body, field):
    response = mdm_a.post("/api/v1/builds/", {"model": phone_model.pk, **body}, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_revoking_an_own_private_build(mdm_a, builds):
    response = mdm_a.post(f"/api/v1/builds/{builds['a'].pk}/revoke/")
    assert response.status_code == 200
    assert response.json()["is_revoked"] is True
    builds["a"].refresh_from_db()
    assert builds["a"].is_revoked


@pytest.mark.parametrize("which", ["public", "b"])
def test_a_client_cannot_revoke_public_or_another_organisations_builds(mdm_a, builds, which):
    assert mdm_a.post(f"/api/v1/builds/{builds[which].pk}/revoke/").status_code == 404
    builds[which].refresh_from_db()
    assert not builds[which].is_revoked


def test_a_build_page_costs_the_same_queries_whatever_its_size(mdm_a, phone_model):
    def count() -> int:
        mdm_a.get("/api/v1/builds/")
        with CaptureQueriesContext(connection) as captured:
            assert mdm_a.get("/api/v1/builds/").status_code == 200
        return len(captured)

    OSBuildFactory.create_batch(3, model=phone_model)
    few = count()
    OSBuildFactory.create_batch(30, model=DeviceModelFactory())
    assert count() == few


def test_model_and_fleet_pages_cost_the_same_queries_whatever_their_size(mdm_a, org_a):
    def count(url: str) -> int:
        mdm_a.get(url)
        with CaptureQueriesContext(connection) as captured:
            assert mdm_a.get(url).status_code == 200
        return len(captured)

    DeviceModelFactory.create_batch(2)
    FleetFactory.create_batch(2, organisation=org_a)
    few = (count("/api/v1/models/"), count("/api/v1/fleets/"))
    DeviceModelFactory.create_batch(20)
    FleetFactory.create_batch(20, organisation=org_a)
    assert (count("/api/v1/models/"), count("/api/v1/fleets/")) == few
