"""PATCH /api/v1/devices/<id>/ sets a device's model (scope `enrol`), by id or by any name the catalogue knows."""

from __future__ import annotations

import pytest

from tests.factories import DeviceFactory, ModelAliasFactory, OSBuildFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def unlinked(org_a, phone_model):
    OSBuildFactory(model=phone_model, build_number="CZ5.B1")
    return DeviceFactory(organisation=org_a, model=None, reported_model="CZ5", reported_build_number="CZ5.B1")


def test_a_client_with_enrol_sets_the_model_by_an_alias_and_the_reported_build_follows(mdm_a, unlinked, phone_model):
    ModelAliasFactory(model=phone_model, name="CZ-5 Pro")
    response = mdm_a.patch(f"/api/v1/devices/{unlinked.pk}/", {"model": "cz5 pro"}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["model"]["id"] == phone_model.pk
    unlinked.refresh_from_db()
    assert unlinked.model == phone_model
    assert unlinked.current_build.build_number == "CZ5.B1"


def test_by_id_too(mdm_a, unlinked, phone_model):
    response = mdm_a.patch(f"/api/v1/devices/{unlinked.pk}/", {"model": phone_model.pk}, format="json")
    assert response.status_code == 200
    assert response.json()["model"]["id"] == phone_model.pk


def test_without_enrol_it_is_403(reader_a, reporter_a, unlinked, phone_model):
    for client in (reader_a, reporter_a):
        response = client.patch(f"/api/v1/devices/{unlinked.pk}/", {"model": phone_model.pk}, format="json")
        assert response.status_code == 403
    unlinked.refresh_from_db()
    assert unlinked.model is None


def test_an_unknown_name_is_a_400_with_the_nearest_names(mdm_a, unlinked, phone_model):
    response = mdm_a.patch(f"/api/v1/devices/{unlinked.pk}/", {"model": "Core-Z6"}, format="json")

    assert response.status_code == 400
    (message,) = response.json()["model"]
    assert "Core-Z6" in message
    assert "Did you mean Crosscall Core-Z5?" in message
