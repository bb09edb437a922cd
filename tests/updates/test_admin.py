"""The catalogue admin: a global catalogue every member reads, public builds for all, private builds for their owner."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import DeviceFactory, DeviceModelFactory, ManufacturerFactory, OSBuildFactory
from updates.models import BuildPin, OSBuild

OSBUILD_CHANGELIST = reverse("admin:updates_osbuild_changelist")


@pytest.fixture
def catalogue(org_a, org_b):
    model = DeviceModelFactory(name="Core-Z5")
    return {
        "model": model,
        "public": OSBuildFactory(model=model, build_number="PUBLIC.240105"),
        "private_a": OSBuildFactory(model=model, build_number="MININT-14.3.2", organisation=org_a),
        "private_b": OSBuildFactory(model=model, build_number="COMPANY-B-7", organisation=org_b),
    }


def _build_form(model, organisation=None, build_number: str = "NEW.1") -> dict[str, object]:
    return {
        "model": model.pk,
        "build_number": build_number,
        "android_version": "14",
        "security_patch_level": "2024-05-05",
        "released_at_0": "2024-05-10",
        "released_at_1": "08:00:00",
        "channel": "stable",
        "organisation": organisation.pk if organisation else "",
        "notes": "",
        "confirm_publication": "on",
    }


def test_publishing_a_build_first_shows_the_devices_it_affects(client, superuser, catalogue):
    model = catalogue["model"]
    DeviceFactory.create_batch(3, model=model, current_build=catalogue["public"])
    client.force_login(superuser)
    data = {**_build_form(model, build_number="NEWER.1"), "released_at_0": "2099-01-01"}
    data.pop("confirm_publication")
    response = client.post(reverse("admin:updates_osbuild_add"), data)
    assert response.status_code == 200  # the form again, with the consequences
    assert "re-evaluates its 3 devices: 3 run an older build" in response.content.decode()
    assert not OSBuild.objects.filter(build_number="NEWER.1").exists()
    response = client.post(reverse("admin:updates_osbuild_add"), {**data, "confirm_publication": "on"})
    assert response.status_code == 302
    assert OSBuild.objects.filter(build_number="NEWER.1").exists()


# --- Manufacturers and models: everyone reads, superusers write ------------------------------------


@pytest.mark.parametrize("persona", ["manager_a", "viewer_a"])
def test_members_read_the_catalogue_but_do_not_write_it(client, persona, request, catalogue):
    client.force_login(request.getfixturevalue(persona))
    model = catalogue["model"]
    for name, obj in (("devicemodel", model), ("manufacturer", model.manufacturer)):
        assert client.get(reverse(f"admin:updates_{name}_changelist")).status_code == 200
        response = client.get(reverse(f"admin:updates_{name}_change", args=[obj.pk]))
        assert response.status_code == 200
        assert response.context["has_change_permission"] is False
        assert client.get(reverse(f"admin:updates_{name}_add")).status_code == 403
    response = client.post(
        reverse("admin:updates_manufacturer_change", args=[model.manufacturer.pk]), {"name": "Hacked", "slug": "h"}
    )
    assert response.status_code == 403


def test_a_superuser_edits_the_catalogue(client, superuser):
    client.force_login(superuser)
    # The "other spellings" inline comes with the form (empty here).
    inline = {"aliases-TOTAL_FORMS": "0", "aliases-INITIAL_FORMS": "0"}
    response = client.post(
        reverse("admin:updates_manufacturer_add"), {"name": "Crosscall", "slug": "crosscall", **inline}
    )
    assert response.status_code == 302


def test_the_model_filter_and_list_read_manufacturers_without_a_query_per_model(
    client, manager_a, django_assert_max_num_queries
):
    for _ in range(15):
        DeviceModelFactory(manufacturer=ManufacturerFactory())
    client.force_login(manager_a)
    with django_assert_max_num_queries(10):
        assert client.get(reverse("admin:updates_devicemodel_changelist")).status_code == 200
    with django_assert_max_num_queries(12):
        assert client.get(OSBUILD_CHANGELIST).status_code == 200


# --- Builds: public for every member, private for their organisation -------------------------------


def test_a_manager_sees_public_builds_and_their_own_private_builds_only(client, manager_a, catalogue):
    client.force_login(manager_a)
    response = client.get(OSBUILD_CHANGELIST)
    assert set(response.context["cl"].result_list) == {catalogue["public"], catalogue["private_a"]}
    assert "COMPANY-B-7" not in response.content.decode()
    response = client.get(reverse("admin:updates_osbuild_change", args=[catalogue["private_b"].pk]))
    assert response.status_code == 302


def test_a_public_build_is_read_only_to_managers(client, manager_a, catalogue):
    public = catalogue["public"]
    client.force_login(manager_a)
    response = client.get(reverse("admin:updates_osbuild_change", args=[public.pk]))
    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    response = client.post(
        reverse("admin:updates_osbuild_change", args=[public.pk]),
        _build_form(catalogue["model"], build_number="RENAMED"),
    )
    assert response.status_code == 403
    public.refresh_from_db()
    assert public.build_number == "PUBLIC.240105"


def test_a_manager_edits_their_private_build(client, manager_a, org_a, catalogue):
    private = catalogue["private_a"]
    client.force_login(manager_a)
    response = client.post(
        reverse("admin:updates_osbuild_change", args=[private.pk]),
        _build_form(catalogue["model"], organisation=org_a, build_number="MININT-14.3.3"),
    )
    assert response.status_code == 302
    private.refresh_from_db()
    assert private.build_number == "MININT-14.3.3"


def test_a_manager_publishes_a_private_build_for_their_organisation(
    client, manager_a, org_a, catalogue, django_capture_on_commit_callbacks
):
    device = DeviceFactory(organisation=org_a, model=catalogue["model"], reported_build_number="MININT-15.0.0")
    client.force_login(manager_a)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:updates_osbuild_add"),
            _build_form(catalogue["model"], organisation=org_a, build_number="MININT-15.0.0"),
        )
    assert response.status_code == 302
    build = OSBuild.objects.get(build_number="MININT-15.0.0")
    assert build.organisation == org_a
    # Published through the catalogue service: once committed, the model's recompute links the devices
    # that already reported it.
    device.refresh_from_db()
    assert device.current_build == build


def test_a_manager_cannot_publish_a_public_build(client, manager_a, catalogue):
    client.force_login(manager_a)
    response = client.post(reverse("admin:updates_osbuild_add"), _build_form(catalogue["model"]))
    assert response.status_code == 200
    assert "organisation" in response.context["adminform"].form.errors
    assert not OSBuild.objects.filter(build_number="NEW.1").exists()


def test_a_manager_of_b_cannot_publish_a_private_build_for_a(client, manager_b, org_a, catalogue):
    client.force_login(manager_b)
    response = client.post(reverse("admin:updates_osbuild_add"), _build_form(catalogue["model"], organisation=org_a))
    assert response.status_code == 200
    assert "organisation" in response.context["adminform"].form.errors
    assert not OSBuild.objects.filter(build_number="NEW.1").exists()


def test_a_superuser_publishes_a_public_build(client, superuser, catalogue):
    client.force_login(superuser)
    response = client.post(reverse("admin:updates_osbuild_add"), _build_form(catalogue["model"]))
    assert response.status_code == 302
    assert OSBuild.objects.get(build_number="NEW.1").organisation is None


def test_build_autocomplete_offers_public_and_own_private_builds(client, manager_b, catalogue):
    client.force_login(manager_b)
    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "updates", "model_name": "buildpin", "field_name": "build", "term": ""},
    )
    texts = {result["text"] for result in response.json()["results"]}
    assert texts == {"PUBLIC.240105", "COMPANY-B-7"}


def test_the_revoke_action_shows_the_consequences_then_pulls_a_private_build_but_not_a_public_one(
    client, manager_a, catalogue
):
    client.force_login(manager_a)
    private = catalogue["private_a"]
    DeviceFactory.create_batch(2, organisation=private.organisation, model=private.model, current_build=private)
    data = {"action": "revoke_selected", "_selected_action": [catalogue["public"].pk, private.pk], "index": 0}
    response = client.post(OSBUILD_CHANGELIST, data)
    assert response.status_code == 200
    page = response.content.decode()
    assert f"This revokes build {private.build_number}" in page and "2 devices run it" in page
    assert catalogue["public"].build_number not in page.split('id="consequences"')[1].split("</ul>")[0]
    private.refresh_from_db()
    assert not private.is_revoked  # nothing happens before the confirmation

    client.post(OSBUILD_CHANGELIST, {**data, "confirm": "yes"})
    catalogue["public"].refresh_from_db()
    private.refresh_from_db()
    assert private.is_revoked and private.revoked_at is not None
    assert not catalogue["public"].is_revoked


def test_the_pin_action_shows_the_devices_retargeted_then_pins(client, manager_a, org_a, catalogue):
    client.force_login(manager_a)
    build = catalogue["public"]
    DeviceFactory.create_batch(3, organisation=org_a, model=build.model)
    data = {"action": "pin_selected", "_selected_action": [build.pk], "index": 0}
    page = client.post(OSBUILD_CHANGELIST, data).content.decode()
    assert f"3 devices of {build.model} will be measured against {build.build_number}" in page
    assert not BuildPin.objects.exists()
    client.post(OSBUILD_CHANGELIST, {**data, "confirm": "yes", "organisation": org_a.pk, "note": "validated"})
    pin = BuildPin.objects.get(organisation=org_a)
    assert (pin.build, pin.note) == (build, "validated")


def test_a_manager_cannot_pin_for_another_organisation(client, manager_a, org_b, catalogue):
    client.force_login(manager_a)
    data = {"action": "pin_selected", "_selected_action": [catalogue["public"].pk], "index": 0}
    client.post(OSBUILD_CHANGELIST, {**data, "confirm": "yes", "organisation": org_b.pk})
    assert not BuildPin.objects.exists()


# --- Pins ----------------------------------------------------------------------------------------


def test_a_manager_pins_a_public_build_for_their_organisation(client, manager_a, org_a, catalogue):
    client.force_login(manager_a)
    response = client.post(
        reverse("admin:updates_buildpin_add"), {"organisation": org_a.pk, "build": catalogue["public"].pk, "note": ""}
    )
    assert response.status_code == 302
    pin = BuildPin.objects.get(organisation=org_a)
    assert (pin.model, pin.build, pin.pinned_by) == (catalogue["model"], catalogue["public"], manager_a)
    assert timezone.now() - pin.pinned_at < dt.timedelta(minutes=1)


def test_a_manager_cannot_pin_another_organisations_private_build(client, manager_a, org_a, catalogue):
    client.force_login(manager_a)
    response = client.post(
        reverse("admin:updates_buildpin_add"),
        {"organisation": org_a.pk, "build": catalogue["private_b"].pk, "note": ""},
    )
    assert response.status_code == 200
    assert "build" in response.context["adminform"].form.errors
    assert not BuildPin.objects.exists()
