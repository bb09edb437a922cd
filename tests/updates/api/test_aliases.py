"""The catalogue API's aliases: read with the model, added with scope `catalogue`, linking devices."""

from __future__ import annotations

import pytest

from devices.models import Device
from tests.factories import DeviceFactory, ModelAliasFactory
from updates.models import ManufacturerAlias, ModelAlias

pytestmark = pytest.mark.django_db


def test_a_model_shows_its_aliases_and_its_manufacturers(reader_a, phone_model):
    ModelAliasFactory(model=phone_model, name="CZ5")
    ManufacturerAlias.objects.create(manufacturer=phone_model.manufacturer, name="Crosscall SAS")

    body = reader_a.get(f"/api/v1/models/{phone_model.pk}/").json()

    assert body["aliases"] == ["CZ5"]
    assert body["manufacturer"]["aliases"] == ["Crosscall SAS"]


def test_adding_an_alias_needs_the_catalogue_scope(reader_a, phone_model):
    response = reader_a.post(f"/api/v1/models/{phone_model.pk}/aliases/", {"name": "CZ5"}, format="json")
    assert response.status_code == 403
    assert not ModelAlias.objects.exists()


def test_an_alias_added_through_the_api_links_the_devices_that_reported_it(
    mdm_a, org_a, phone_model, django_capture_on_commit_callbacks
):
    device = DeviceFactory(organisation=org_a, model=None, reported_model="Crosscall CZ5")
    with django_capture_on_commit_callbacks(execute=True):
        response = mdm_a.post(f"/api/v1/models/{phone_model.pk}/aliases/", {"name": "CZ5"}, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["aliases"] == ["CZ5"]
    device.refresh_from_db()
    assert device.model == phone_model


def test_a_manufacturer_alias_added_through_the_api_links_devices(
    mdm_a, org_a, phone_model, django_capture_on_commit_callbacks
):
    device = DeviceFactory(organisation=org_a, model=None, reported_model="CROSSCALL SAS Core-Z5")
    with django_capture_on_commit_callbacks(execute=True):
        response = mdm_a.post(
            f"/api/v1/models/{phone_model.pk}/manufacturer-aliases/", {"name": "Crosscall SAS"}, format="json"
        )

    assert response.status_code == 201, response.json()
    assert Device.objects.get(pk=device.pk).model == phone_model


def test_a_bad_alias_is_a_400_naming_the_field(mdm_a, phone_model):
    for name in ("", "--"):
        response = mdm_a.post(f"/api/v1/models/{phone_model.pk}/aliases/", {"name": name}, format="json")
        assert response.status_code == 400
        assert "name" in response.json()
    ModelAliasFactory(model=phone_model, name="CZ5")
    response = mdm_a.post(f"/api/v1/models/{phone_model.pk}/aliases/", {"name": "cz-5"}, format="json")
    assert response.status_code == 400, response.json()
