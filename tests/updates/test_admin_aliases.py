"""The catalogue admin's alias inlines: a superuser adds names, through the services, and devices follow."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import DeviceFactory, DeviceModelFactory, ManufacturerFactory
from updates.models import ManufacturerAlias, ModelAlias

pytestmark = pytest.mark.django_db


def _inline(prefix: str, names: list[str]) -> dict:
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(names)),
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for n, name in enumerate(names):
        data[f"{prefix}-{n}-name"] = name
    return data


@pytest.fixture
def tc21():
    zebra = ManufacturerFactory(name="Zebra Technologies", slug="zebra-technologies")
    return DeviceModelFactory(manufacturer=zebra, name="TC21", slug="tc21", launched_on=None)


def test_an_alias_added_in_the_admin_links_the_devices_that_reported_it(
    client, superuser, tc21, django_capture_on_commit_callbacks
):
    device = DeviceFactory(model=None, reported_model="Zebra Technologies TC21-HC")
    client.force_login(superuser)
    form = {
        "manufacturer": tc21.manufacturer_id,
        "name": tc21.name,
        "slug": tc21.slug,
        "security_support_until": tc21.security_support_until.isoformat(),
        "os_support_until": tc21.os_support_until.isoformat(),
        **_inline("aliases", ["TC21-HC"]),
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:updates_devicemodel_change", args=[tc21.pk]), form)

    assert response.status_code == 302, response.context["inline_admin_formsets"][0].formset.errors
    assert list(ModelAlias.objects.values_list("name", flat=True)) == ["TC21-HC"]
    device.refresh_from_db()
    assert device.model == tc21


def test_a_manufacturer_spelling_added_in_the_admin_links_devices(
    client, superuser, tc21, django_capture_on_commit_callbacks
):
    device = DeviceFactory(model=None, reported_model="Zebra TC21")
    client.force_login(superuser)
    form = {"name": "Zebra Technologies", "slug": "zebra-technologies", **_inline("aliases", ["Zebra"])}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:updates_manufacturer_change", args=[tc21.manufacturer_id]), form)

    assert response.status_code == 302
    assert ManufacturerAlias.objects.get().name == "Zebra"
    device.refresh_from_db()
    assert device.model == tc21


def test_a_manager_sees_the_aliases_but_cannot_change_them(client, manager_a, tc21):
    ModelAlias.objects.create(model=tc21, name="TC21-HC")
    client.force_login(manager_a)
    response = client.get(reverse("admin:updates_devicemodel_change", args=[tc21.pk]))
    assert response.status_code == 200
    assert "TC21-HC" in response.content.decode()
    response = client.post(reverse("admin:updates_devicemodel_change", args=[tc21.pk]), _inline("aliases", ["Other"]))
    assert response.status_code == 403
    assert ModelAlias.objects.count() == 1
