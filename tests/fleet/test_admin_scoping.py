"""The admin shows each staff user their organisations only, with the rights their Membership role gives."""

from __future__ import annotations

import datetime as dt

import pytest
from django.apps import apps
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from alerts.models import AlertSubscription, DigestDelivery, DigestMessage, Unsubscription
from devices.compliance.rollouts import rollouts_refresh
from devices.compliance.tallies import snapshot_statuses, tally_devices
from devices.models import Device, ImportJob, SweepRange, SweepRun, Waiver
from fleet.choices import Role
from fleet.models import Organisation
from fleet.selectors import organisation_ids_for_request, organisation_ids_for_user
from tests.factories import (
    ApiClientFactory,
    BatteryEventFactory,
    CheckInFactory,
    CompliancePolicyFactory,
    DeviceFactory,
    DeviceModelFactory,
    DeviceSourceIdFactory,
    FleetFactory,
    ManufacturerAliasFactory,
    MembershipFactory,
    ModelAliasFactory,
    ObservedBuildFactory,
    OrganisationFactory,
    OSBuildFactory,
    PubSubMessageFactory,
    RejectedMessageFactory,
    StatusChangeFactory,
    TaskDeliveryFactory,
    UserFactory,
)
from updates.models import BuildPin

ADMIN_APPS = ("fleet", "devices", "updates", "alerts")


def _url(model: type, view: str, *args: object) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def world(org_a, org_b):
    """Each organisation with a fleet, a device in it, and that device's history; names that say whose they are."""
    data = {}
    for key, org in (("a", org_a), ("b", org_b)):
        fleet = FleetFactory(organisation=org, name=f"Fleet-only-of-{key.upper()}", slug=f"fleet-{key}")
        build = OSBuildFactory(build_number=f"PRIVATE-{key.upper()}.1", organisation=org)
        device = DeviceFactory(
            organisation=org,
            fleet=fleet,
            serial=f"SERIAL-OF-{key.upper()}-0001",
            model=build.model,
            current_build=build,
            asset_tag=f"TAG-{key.upper()}",
        )
        data[key] = {
            "org": org,
            "fleet": fleet,
            "device": device,
            "build": build,
            "check_in": CheckInFactory(device=device, build=build),
            "battery_event": BatteryEventFactory(device=device),
            "status_change": StatusChangeFactory(device=device),
        }
    return data


@pytest.fixture
def staff_without_membership(db):
    return UserFactory(username="staff-nobody")


# --- Every page renders --------------------------------------------------------------------------


def _registered_models() -> list[type]:
    return sorted(
        (model for model in admin.site._registry if model._meta.app_label in ADMIN_APPS),
        key=lambda model: model._meta.label,
    )


@pytest.fixture
def one_of_everything(world, manager_a):
    """At least one row of every model (the world gives devices and history; these the rest)."""
    CompliancePolicyFactory(organisation=world["a"]["org"])
    CompliancePolicyFactory(organisation=world["a"]["org"], fleet=world["a"]["fleet"])
    ApiClientFactory(organisation=world["a"]["org"])
    ObservedBuildFactory(organisation=world["a"]["org"], model=world["a"]["device"].model)
    public_build = OSBuildFactory(model=world["a"]["device"].model, build_number="PUBLIC.1")
    ModelAliasFactory(model=world["a"]["device"].model)
    ManufacturerAliasFactory(manufacturer=world["a"]["device"].model.manufacturer)
    # Models without a factory yet: built here with what they require.
    BuildPin.objects.create(
        organisation=world["a"]["org"], model=public_build.model, build=public_build, pinned_at=timezone.now()
    )
    Waiver.objects.create(
        organisation=world["a"]["org"],
        device=world["a"]["device"],
        reason="Field trial",
        expires_at=timezone.now() + dt.timedelta(days=30),
    )
    subscription = AlertSubscription.objects.create(
        organisation=world["a"]["org"], name="Daily digest", extra_recipients="ops@example.org"
    )
    delivery = DigestDelivery.objects.create(subscription=subscription, period=timezone.now())
    DigestMessage.objects.create(delivery=delivery, address="ops@example.org")
    Unsubscription.objects.create(subscription=subscription, address="left@example.org", via="page")
    snapshot_statuses()
    tally_devices()
    rollouts_refresh()
    run = SweepRun.objects.create(
        started_at=timezone.now(), finished_at=timezone.now(), range_size=1, status="succeeded"
    )
    SweepRange.objects.create(run=run, lo=1, hi=1, status="done")
    TaskDeliveryFactory()
    ImportJob.objects.create(
        organisation=world["a"]["org"], kind="devices", filename="inventory.csv", content=b"serial\n"
    )
    RejectedMessageFactory(organisation=world["a"]["org"])
    PubSubMessageFactory(organisation=world["a"]["org"])
    DeviceSourceIdFactory(device=world["a"]["device"])
    return world


def test_every_model_of_the_apps_has_an_admin():
    models = {model for app in ADMIN_APPS for model in apps.get_app_config(app).get_models()}
    assert models - set(admin.site._registry) == set()


def test_every_admin_page_renders_for_a_superuser(client, superuser, one_of_everything):
    client.force_login(superuser)
    for model in _registered_models():
        obj = model._default_manager.first()
        assert obj is not None, f"no {model._meta.label} to show: build one in the fixture"
        model_admin = admin.site._registry[model]

        response = client.get(_url(model, "changelist"))
        assert response.status_code == 200, model._meta.label
        if model_admin.search_fields:
            assert client.get(_url(model, "changelist"), {"q": str(obj)}).status_code == 200, model._meta.label
        response = client.get(_url(model, "add"))
        assert response.status_code == (200 if model_admin.has_add_permission(response.wsgi_request) else 403)
        assert client.get(_url(model, "change", obj.pk)).status_code == 200, model._meta.label
        assert client.get(_url(model, "history", obj.pk)).status_code == 200, model._meta.label
        assert client.get(_url(model, "delete", obj.pk)).status_code == 200, model._meta.label


def test_every_admin_page_of_a_renders_for_its_manager(client, manager_a, one_of_everything):
    client.force_login(manager_a)
    assert client.get(reverse("admin:index")).status_code == 200
    request = RequestFactory().get("/admin/")
    request.user = manager_a
    for model in _registered_models():
        # Global operators' rows (the sweeps) are closed to members: 403, as for any staff user without rights.
        expected = 200 if admin.site._registry[model].has_module_permission(request) else 403
        assert client.get(_url(model, "changelist")).status_code == expected, model._meta.label


# --- A manager of B sees nothing of A ------------------------------------------------------------


def test_manager_of_b_sees_none_of_as_devices_in_the_device_changelist(client, manager_b, world):
    client.force_login(manager_b)
    response = client.get(_url(Device, "changelist"))
    assert response.status_code == 200
    body = response.content.decode()
    assert world["b"]["device"].serial in body
    assert world["a"]["device"].serial not in body
    assert world["a"]["org"].name not in body


def test_a_superuser_sees_the_devices_of_every_organisation(client, superuser, world):
    client.force_login(superuser)
    body = client.get(_url(Device, "changelist")).content.decode()
    assert world["a"]["device"].serial in body
    assert world["b"]["device"].serial in body


@pytest.mark.parametrize("view", ["change", "history", "delete"])
def test_manager_of_b_opening_a_device_of_a_by_url_is_turned_away_as_if_it_did_not_exist(
    client, manager_b, world, view
):
    client.force_login(manager_b)
    device_a = world["a"]["device"]
    response = client.get(_url(Device, view, device_a.pk))
    assert response.status_code == 302
    assert response.url == reverse("admin:index")
    body = client.get(response.url).content.decode()
    assert device_a.serial not in body
    assert world["a"]["org"].name not in body


@pytest.mark.parametrize("key", ["check_in", "battery_event", "status_change", "fleet", "build"])
def test_manager_of_b_cannot_open_the_history_or_fleets_of_a_by_url(client, manager_b, world, key):
    client.force_login(manager_b)
    obj = world["a"][key]
    response = client.get(_url(type(obj), "change", obj.pk))
    assert response.status_code == 302
    assert response.url == reverse("admin:index")


def _autocomplete(client, app_label: str, model_name: str, field_name: str, term: str = "") -> list[str]:
    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": app_label, "model_name": model_name, "field_name": field_name, "term": term},
    )
    assert response.status_code == 200
    return [result["text"] for result in response.json()["results"]]


def test_device_autocomplete_of_the_battery_event_form_offers_none_of_as_devices(client, manager_a, manager_b, world):
    client.force_login(manager_b)
    assert _autocomplete(client, "devices", "batteryevent", "device") == [world["b"]["device"].serial]
    assert _autocomplete(client, "devices", "batteryevent", "device", world["a"]["device"].serial) == []
    client.force_login(manager_a)
    assert _autocomplete(client, "devices", "batteryevent", "device") == [world["a"]["device"].serial]


def test_fleet_autocomplete_offers_none_of_as_fleets(client, manager_b, world):
    client.force_login(manager_b)
    assert _autocomplete(client, "devices", "device", "fleet") == [world["b"]["fleet"].name]
    assert _autocomplete(client, "fleet", "compliancepolicy", "fleet", "Fleet") == [world["b"]["fleet"].name]


def test_organisation_autocomplete_offers_only_the_users_organisations(client, manager_b, world):
    client.force_login(manager_b)
    assert _autocomplete(client, "devices", "device", "organisation") == [world["b"]["org"].name]


def test_the_fleet_filter_of_the_device_list_names_none_of_as_fleets(client, manager_b, world):
    client.force_login(manager_b)
    response = client.get(_url(Device, "changelist"))
    fleet_filter = next(
        spec for spec in response.context["cl"].filter_specs if getattr(spec, "field_path", None) == "fleet"
    )
    assert [name for _pk, name in fleet_filter.lookup_choices] == [world["b"]["fleet"].name]
    assert world["a"]["fleet"].name not in response.content.decode()


def test_the_battery_event_add_form_offers_none_of_as_devices(client, manager_b, world):
    client.force_login(manager_b)
    response = client.get(reverse("admin:devices_batteryevent_add"))
    assert response.status_code == 200
    choices = response.context["adminform"].form.fields["device"].queryset
    assert list(choices) == [world["b"]["device"]]


def test_the_device_add_form_offers_only_the_managers_organisations_and_fleets(client, manager_b, world):
    client.force_login(manager_b)
    form = client.get(_url(Device, "add")).context["adminform"].form
    assert list(form.fields["organisation"].queryset) == [world["b"]["org"]]
    assert list(form.fields["fleet"].queryset) == [world["b"]["fleet"]]
    # With one organisation to manage, the form starts with it.
    assert form.initial["organisation"] == world["b"]["org"].pk


def _device_form(org: Organisation, **overrides: object) -> dict[str, object]:
    data = {
        "organisation": org.pk,
        "serial": "NEW-0001",
        "imei": "",
        "asset_tag": "",
        "assignee": "",
        "channel": "stable",
        "enrolled_at_0": "2024-01-01",
        "enrolled_at_1": "10:00:00",
    }
    data.update(overrides)
    return data


def test_manager_of_b_posting_a_device_for_organisation_a_is_rejected(client, manager_b, world):
    client.force_login(manager_b)
    response = client.post(_url(Device, "add"), _device_form(world["a"]["org"]))
    assert response.status_code == 200
    assert "organisation" in response.context["adminform"].form.errors
    assert not Device.objects.filter(serial="NEW-0001").exists()


def test_manager_of_b_may_add_a_device_to_b(client, manager_b, world):
    client.force_login(manager_b)
    response = client.post(_url(Device, "add"), _device_form(world["b"]["org"], fleet=world["b"]["fleet"].pk))
    assert response.status_code == 302
    assert Device.objects.get(serial="NEW-0001").organisation == world["b"]["org"]


def test_manager_of_b_cannot_move_a_device_of_b_into_a_fleet_of_a(client, manager_b, world):
    client.force_login(manager_b)
    device = world["b"]["device"]
    response = client.post(
        _url(Device, "change", device.pk),
        _device_form(world["b"]["org"], serial=device.serial, fleet=world["a"]["fleet"].pk),
    )
    assert response.status_code == 200
    assert "fleet" in response.context["adminform"].form.errors
    device.refresh_from_db()
    assert device.fleet == world["b"]["fleet"]


def test_not_even_a_superuser_can_put_a_device_in_another_organisations_fleet(client, superuser, world):
    client.force_login(superuser)
    response = client.post(_url(Device, "add"), _device_form(world["b"]["org"], fleet=world["a"]["fleet"].pk))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["fleet"] == ["This belongs to another organisation."]
    assert not Device.objects.filter(serial="NEW-0001").exists()


def test_saving_a_device_of_a_as_manager_of_b_is_refused_even_past_the_form(manager_b, world):
    """The form is one door; save_model checks again, whatever a custom form or a future path lets through."""
    request = RequestFactory().post("/")
    request.user = manager_b
    device = Device(organisation=world["a"]["org"], serial="SNEAKY-1")
    with pytest.raises(PermissionDenied):
        admin.site._registry[Device].save_model(request, device, form=None, change=False)
    assert not Device.objects.filter(serial="SNEAKY-1").exists()


# --- Roles ---------------------------------------------------------------------------------------


def test_viewer_of_a_can_view_as_devices_but_not_add_or_change_them(client, viewer_a, world):
    client.force_login(viewer_a)
    device = world["a"]["device"]
    assert world["a"]["device"].serial in client.get(_url(Device, "changelist")).content.decode()
    response = client.get(_url(Device, "change", device.pk))
    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    assert 'name="_save"' not in response.content.decode()

    assert client.get(_url(Device, "add")).status_code == 403
    assert client.post(_url(Device, "add"), _device_form(world["a"]["org"])).status_code == 403
    response = client.post(
        _url(Device, "change", device.pk), _device_form(world["a"]["org"], serial=device.serial, assignee="Mallory")
    )
    assert response.status_code == 403
    device.refresh_from_db()
    assert device.assignee == ""
    assert client.post(_url(Device, "delete", device.pk), {"post": "yes"}).status_code == 403
    assert Device.objects.filter(pk=device.pk).exists()


def test_staff_user_without_membership_gets_no_app_on_the_index(client, staff_without_membership, world):
    client.force_login(staff_without_membership)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert response.context["app_list"] == []
    assert client.get(_url(Device, "changelist")).status_code == 403
    assert client.get(_url(Organisation, "changelist")).status_code == 403


def test_a_member_sees_the_fleet_devices_and_catalogue_apps_but_not_the_accounts(client, viewer_a, world):
    client.force_login(viewer_a)
    app_labels = {app["app_label"] for app in client.get(reverse("admin:index")).context["app_list"]}
    assert app_labels == {"fleet", "devices", "updates", "alerts"}


def test_manager_of_a_who_only_views_c_may_change_as_devices_but_not_cs(client, manager_a, world):
    org_c = OrganisationFactory(name="Organisation C", slug="org-c")
    MembershipFactory(user=manager_a, organisation=org_c, role=Role.VIEWER)
    fleet_c = FleetFactory(organisation=org_c, name="Fleet-only-of-C")
    device_c = DeviceFactory(organisation=org_c, fleet=fleet_c, serial="SERIAL-OF-C-0001")
    client.force_login(manager_a)

    body = client.get(_url(Device, "changelist")).content.decode()
    assert device_c.serial in body and world["a"]["device"].serial in body
    response = client.get(_url(Device, "change", device_c.pk))
    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    response = client.post(
        _url(Device, "change", device_c.pk), _device_form(org_c, serial=device_c.serial, assignee="Mallory")
    )
    assert response.status_code == 403

    form = client.get(_url(Device, "add")).context["adminform"].form
    assert list(form.fields["organisation"].queryset) == [world["a"]["org"]]
    assert fleet_c not in form.fields["fleet"].queryset
    assert _autocomplete(client, "devices", "device", "fleet") == [world["a"]["fleet"].name]


def test_a_manager_who_only_views_c_cannot_delete_cs_fleets_in_bulk(client, manager_a, world):
    org_c = OrganisationFactory(name="Organisation C", slug="org-c")
    MembershipFactory(user=manager_a, organisation=org_c, role=Role.VIEWER)
    fleet_c = FleetFactory(organisation=org_c, name="Fleet-only-of-C")
    client.force_login(manager_a)
    response = client.post(
        _url(type(fleet_c), "changelist"),
        {"action": "delete_selected", "_selected_action": [fleet_c.pk, world["a"]["fleet"].pk], "post": "yes"},
    )
    assert response.status_code == 403
    assert type(fleet_c).objects.filter(pk__in=[fleet_c.pk, world["a"]["fleet"].pk]).count() == 2


def test_big_tables_offer_no_bulk_delete_that_would_load_every_cascaded_row(client, superuser, world):
    client.force_login(superuser)
    for model in (Device, type(world["a"]["check_in"]), type(world["a"]["status_change"])):
        assert "delete_selected" not in client.get(_url(model, "changelist")).content.decode()
    assert "delete_selected" in client.get(_url(type(world["a"]["fleet"]), "changelist")).content.decode()


# --- Who belongs where, asked once ---------------------------------------------------------------


def test_organisation_ids_distinguish_seeing_from_managing(manager_a, viewer_a, org_a, org_b):
    MembershipFactory(user=viewer_a, organisation=org_b, role=Role.MANAGER)
    assert organisation_ids_for_user(manager_a) == [org_a.pk]
    assert organisation_ids_for_user(manager_a, manage=True) == [org_a.pk]
    assert organisation_ids_for_user(viewer_a) == sorted([org_a.pk, org_b.pk])
    assert organisation_ids_for_user(viewer_a, manage=True) == [org_b.pk]


def test_an_inactive_user_belongs_nowhere(manager_a):
    manager_a.is_active = False
    assert organisation_ids_for_user(manager_a) == []


def test_organisation_ids_are_read_once_per_request(manager_a, org_a, django_assert_num_queries):
    request = RequestFactory().get("/admin/")
    request.user = manager_a
    with django_assert_num_queries(1):
        assert organisation_ids_for_request(request) == [org_a.pk]
        assert organisation_ids_for_request(request, manage=True) == [org_a.pk]
        assert organisation_ids_for_request(request) == [org_a.pk]


def test_a_device_changelist_asks_for_the_memberships_once(client, manager_a, world):
    client.force_login(manager_a)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(_url(Device, "changelist")).status_code == 200
    membership_queries = [q["sql"] for q in queries.captured_queries if "fleet_membership" in q["sql"]]
    assert len(membership_queries) == 1


def test_catalogue_models_are_visible_to_members_but_only_superusers_write_them(client, viewer_a, manager_a, world):
    model = DeviceModelFactory()
    client.force_login(manager_a)
    assert client.get(_url(type(model), "change", model.pk)).status_code == 200
    assert client.get(_url(type(model), "add")).status_code == 403
