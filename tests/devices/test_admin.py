"""The device admin: cheap on a big table, engine-owned fields read-only, history read-only and bounded."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from devices.choices import BatteryEventKind, ComplianceStatus
from devices.models import BatteryEvent, CheckIn, Device, StatusChange
from fleet.scoping import CappedCountPaginator
from tests.factories import (
    BatteryEventFactory,
    CheckInFactory,
    DeviceFactory,
    DeviceSourceIdFactory,
    FleetFactory,
    OSBuildFactory,
    StatusChangeFactory,
    imei_with_check_digit,
)

DEVICE_CHANGELIST = reverse("admin:devices_device_changelist")


def _devices(org, count: int) -> list[Device]:
    """Devices that each bring their own fleet, model and build, so any per-row query shows up as N queries."""
    devices = []
    for _ in range(count):
        build = OSBuildFactory()
        devices.append(
            DeviceFactory(
                organisation=org, fleet=FleetFactory(organisation=org), model=build.model, current_build=build
            )
        )
    return devices


def _changelist_queries(client, url: str = DEVICE_CHANGELIST, **params: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params)
    assert response.status_code == 200
    return [query["sql"] for query in queries.captured_queries]


# --- Cheap on a big table ------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["manager_a", "superuser"])
def test_the_device_changelist_costs_the_same_queries_for_5_50_or_120_devices(
    client, org_a, persona, request, django_assert_num_queries
):
    user = request.getfixturevalue(persona)
    client.force_login(user)
    _devices(org_a, 5)
    baseline = len(_changelist_queries(client))
    # Session, user, memberships, capped count, page, and the fleet/model/organisation filters.
    assert baseline <= 10

    _devices(org_a, 45)
    with django_assert_num_queries(baseline):
        assert client.get(DEVICE_CHANGELIST).status_code == 200
    _devices(org_a, 70)  # beyond one page of 50
    with django_assert_num_queries(baseline):
        response = client.get(DEVICE_CHANGELIST)
    assert len(response.context["cl"].result_list) == 50


def _unbounded_counts(queries: list[str], table: str) -> list[str]:
    """COUNT queries over ``table`` that do not stop at a LIMIT."""
    return [sql for sql in queries if "COUNT(" in sql.upper() and table in sql and "LIMIT" not in sql.upper()]


@pytest.mark.parametrize(
    ("model", "factory"),
    [(Device, DeviceFactory), (CheckIn, CheckInFactory), (StatusChange, StatusChangeFactory)],
)
def test_big_changelists_never_count_the_whole_table(client, superuser, model, factory):
    client.force_login(superuser)
    factory.create_batch(3)
    url = reverse(f"admin:devices_{model._meta.model_name}_changelist")
    table = model._meta.db_table
    queries = _changelist_queries(client, url)
    assert [sql for sql in queries if "COUNT(" in sql.upper() and table in sql], "the page should count, capped"
    assert _unbounded_counts(queries, table) == []
    # Filtered and searched lists too, and the per-filter counts (facets) stay off even when asked for.
    assert _unbounded_counts(_changelist_queries(client, url, q="nothing-matches", _facets="1"), table) == []


def test_a_capped_count_says_more_than_instead_of_a_wrong_total(client, superuser, org_a, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "count_cap", 3)
    DeviceFactory.create_batch(5, organisation=org_a)
    client.force_login(superuser)
    response = client.get(DEVICE_CHANGELIST)
    assert response.context["cl"].paginator.count_is_capped
    body = response.content.decode()
    assert "More than 3 devices" in body
    assert "5 devices" not in body


def test_the_device_changelist_follows_the_organisation_serial_index(client, manager_a, org_a):
    client.force_login(manager_a)
    for serial in ("SN-C", "SN-A", "SN-B"):
        DeviceFactory(organisation=org_a, serial=serial)
    response = client.get(DEVICE_CHANGELIST)
    assert [d.serial for d in response.context["cl"].result_list] == ["SN-A", "SN-B", "SN-C"]
    page = next(q for q in _changelist_queries(client) if 'FROM "devices_device"' in q and "ORDER BY" in q)
    order_by = page.upper().split("ORDER BY")[-1]
    assert re.search(r'"DEVICES_DEVICE"\."ORGANISATION_ID" ASC,\s*"DEVICES_DEVICE"\."SERIAL" ASC', order_by), order_by


def test_the_device_list_cannot_be_sorted_by_a_column_no_index_serves_even_by_url(client, manager_a, org_a):
    # Sorted by fleet name, descending, SN-2 would come first.
    DeviceFactory(organisation=org_a, serial="SN-1", fleet=FleetFactory(organisation=org_a, name="Alpha"))
    DeviceFactory(organisation=org_a, serial="SN-2", fleet=FleetFactory(organisation=org_a, name="Zulu"))
    client.force_login(manager_a)
    # "o" counts the changelist's columns, the actions' checkbox column included.
    columns = client.get(DEVICE_CHANGELIST).context["cl"].list_display
    fleet_column = columns.index("fleet")
    response = client.get(DEVICE_CHANGELIST, {"o": f"-{fleet_column}"})
    assert response.status_code == 200
    assert [d.serial for d in response.context["cl"].result_list] == ["SN-1", "SN-2"]
    serial_column = columns.index("serial")
    response = client.get(DEVICE_CHANGELIST, {"o": f"-{serial_column}"})
    assert [d.serial for d in response.context["cl"].result_list] == ["SN-2", "SN-1"]


# --- Search by identifiers an index answers -------------------------------------------------------


@pytest.fixture
def searchable(org_a):
    return {
        "serial": DeviceFactory(organisation=org_a, serial="R58N12ABCDE", assignee="Camille Martin"),
        "imei": DeviceFactory(organisation=org_a, imei=imei_with_check_digit("35209900176148")),
        "tag": DeviceFactory(organisation=org_a, asset_tag="MIN-IDF-000123", assignee="Jean Dupont"),
    }


def _search(client, term: str) -> set[str]:
    response = client.get(DEVICE_CHANGELIST, {"q": term})
    assert response.status_code == 200
    return {device.serial for device in response.context["cl"].result_list}


def test_device_search_finds_exact_serial_imei_and_asset_tag(client, manager_a, searchable):
    client.force_login(manager_a)
    assert _search(client, "R58N12ABCDE") == {"R58N12ABCDE"}
    assert _search(client, "r58n12abcde") == {"R58N12ABCDE"}  # serials are upper case; people type either
    assert _search(client, searchable["imei"].imei) == {searchable["imei"].serial}
    assert _search(client, "MIN-IDF-000123") == {searchable["tag"].serial}


def test_device_search_does_not_scan_for_fragments_of_identifiers(client, manager_a, searchable):
    client.force_login(manager_a)
    assert _search(client, "R58N12") == set()
    assert _search(client, "000123") == set()


def test_device_search_falls_back_to_the_assignee(client, manager_a, searchable):
    client.force_login(manager_a)
    assert _search(client, "dupont") == {searchable["tag"].serial}


def test_device_search_stays_within_the_users_organisations(client, manager_b, searchable):
    client.force_login(manager_b)
    assert _search(client, "R58N12ABCDE") == set()
    assert _search(client, "Dupont") == set()


# --- The device page -----------------------------------------------------------------------------


def _post_device(client, device: Device, **changes: object):
    data = {
        "organisation": device.organisation_id,
        "fleet": device.fleet_id or "",
        "serial": device.serial,
        "imei": device.imei or "",
        "asset_tag": device.asset_tag,
        "assignee": device.assignee,
        "model": device.model_id or "",
        "channel": device.channel,
        "enrolled_at_0": "2024-01-01",
        "enrolled_at_1": "10:00:00",
    }
    data.update(changes)
    return client.post(reverse("admin:devices_device_change", args=[device.pk]), data)


def test_compliance_fields_cannot_be_edited_on_the_device_page(client, manager_a, org_a):
    device = DeviceFactory(organisation=org_a, compliance_status=ComplianceStatus.CRITICAL)
    client.force_login(manager_a)
    form = client.get(reverse("admin:devices_device_change", args=[device.pk])).context["adminform"].form
    for field in ("compliance_status", "status_since", "behind_since", "latest_build", "battery_status"):
        assert field not in form.fields

    response = _post_device(client, device, assignee="Camille Martin", compliance_status=ComplianceStatus.UP_TO_DATE)
    assert response.status_code == 302
    device.refresh_from_db()
    assert device.assignee == "Camille Martin"
    # The engine recomputed it on save (never reported: unknown), but never took the posted value.
    assert device.compliance_status == ComplianceStatus.UNKNOWN


def test_the_device_page_shows_only_the_newest_check_ins_and_links_to_all(client, manager_a, org_a):
    device = DeviceFactory(organisation=org_a)
    start = timezone.now() - dt.timedelta(days=30)
    for day in range(25):
        CheckInFactory(device=device, reported_at=start + dt.timedelta(days=day), build_number=f"BUILD-{day:02d}")
    client.force_login(manager_a)
    body = client.get(reverse("admin:devices_device_change", args=[device.pk])).content.decode()
    assert "BUILD-24" in body and "BUILD-05" in body
    assert "BUILD-04" not in body  # the 21st newest
    assert f"{reverse('admin:devices_checkin_changelist')}?device__id__exact={device.pk}" in body


def test_the_device_page_reads_a_bounded_history(client, manager_a, org_a):
    device = DeviceFactory(organisation=org_a)
    CheckInFactory.create_batch(3, device=device)
    client.force_login(manager_a)
    queries = _changelist_queries(client, reverse("admin:devices_device_change", args=[device.pk]))
    history = [sql for sql in queries if "devices_checkin" in sql and "devices_device" not in sql.split("FROM")[1]]
    assert history and all("LIMIT 20" in sql for sql in history)


def test_a_devices_check_ins_are_listed_newest_first_when_followed_from_its_page(client, manager_a, org_a):
    device = DeviceFactory(organisation=org_a)
    now = timezone.now()
    older = CheckInFactory(device=device, reported_at=now - dt.timedelta(days=2))
    newer = CheckInFactory(device=device, reported_at=now - dt.timedelta(days=1))
    CheckInFactory()  # another device's report
    client.force_login(manager_a)
    response = client.get(reverse("admin:devices_checkin_changelist"), {"device__id__exact": device.pk})
    assert list(response.context["cl"].result_list) == [newer, older]


# --- History is read-only ------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "factory"), [(CheckIn, CheckInFactory), (StatusChange, StatusChangeFactory)])
def test_history_cannot_be_added_or_changed_even_by_a_superuser(client, superuser, manager_a, org_a, model, factory):
    row = factory(device=DeviceFactory(organisation=org_a))
    name = model._meta.model_name
    for user in (superuser, manager_a):
        client.force_login(user)
        assert client.get(reverse(f"admin:devices_{name}_add")).status_code == 403
        response = client.get(reverse(f"admin:devices_{name}_change", args=[row.pk]))
        assert response.status_code == 200
        assert response.context["has_change_permission"] is False
        assert client.post(reverse(f"admin:devices_{name}_change", args=[row.pk]), {}).status_code == 403


@pytest.mark.parametrize(("model", "factory"), [(CheckIn, CheckInFactory), (StatusChange, StatusChangeFactory)])
def test_only_a_superuser_may_delete_history(client, superuser, manager_a, org_a, model, factory):
    row = factory(device=DeviceFactory(organisation=org_a))
    url = reverse(f"admin:devices_{model._meta.model_name}_delete", args=[row.pk])
    client.force_login(manager_a)
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=row.pk).exists()
    client.force_login(superuser)
    assert client.post(url, {"post": "yes"}).status_code == 302
    assert not model.objects.filter(pk=row.pk).exists()


def test_check_ins_are_found_by_catalogue_build_number_or_device_serial(client, manager_a, org_a):
    build = OSBuildFactory(build_number="UQ1A.240105.004")
    device = DeviceFactory(organisation=org_a, serial="SN-SEARCHED")
    on_build = CheckInFactory(build=build, build_number=build.build_number, device=DeviceFactory(organisation=org_a))
    of_device = CheckInFactory(device=device, build_number="OTHER")
    unknown = CheckInFactory(device=DeviceFactory(organisation=org_a), build_number="NOT-IN-CATALOGUE")
    client.force_login(manager_a)
    url = reverse("admin:devices_checkin_changelist")

    def found(term: str) -> set[int]:
        return {c.pk for c in client.get(url, {"q": term}).context["cl"].result_list}

    assert found("UQ1A.240105.004") == {on_build.pk}
    assert found("SN-SEARCHED") == {of_device.pk}
    assert found("NOT-IN-CATALOGUE") == {unknown.pk}


# --- Battery events ------------------------------------------------------------------------------


def test_recording_a_replacement_in_the_admin_resets_the_battery(client, manager_a, org_a):
    device = DeviceFactory(
        organisation=org_a, battery_installed_on=dt.date(2021, 3, 1), battery_health_pct=61, battery_cycle_count=900
    )
    client.force_login(manager_a)
    response = client.post(
        reverse("admin:devices_batteryevent_add"),
        {
            "device": device.pk,
            "kind": BatteryEventKind.REPLACEMENT,
            "occurred_at_0": "2024-06-03",
            "occurred_at_1": "09:30:00",
            "part_serial": "BAT-NEW-1",
            "reason": "Swollen",
            "performed_by": "Atelier Lyon",
        },
    )
    assert response.status_code == 302
    event = BatteryEvent.objects.get(part_serial="BAT-NEW-1")
    assert event.recorded_by == manager_a
    device.refresh_from_db()
    assert device.battery_installed_on == dt.date(2024, 6, 3)
    assert device.battery_cycle_count == 0


def test_recording_a_health_reading_in_the_admin_updates_the_device_battery(client, manager_a, org_a):
    device = DeviceFactory(organisation=org_a, battery_health_pct=95, last_check_in_at=None)
    client.force_login(manager_a)
    response = client.post(
        reverse("admin:devices_batteryevent_add"),
        {
            "device": device.pk,
            "kind": BatteryEventKind.READING,
            "occurred_at_0": "2024-06-03",
            "occurred_at_1": "09:30:00",
            "health_pct": 62,
            "part_serial": "",
            "reason": "Technician check",
            "performed_by": "Atelier Lyon",
        },
    )
    assert response.status_code == 302
    assert BatteryEvent.objects.get(reason="Technician check").recorded_by == manager_a
    device.refresh_from_db()
    assert (device.battery_health_pct, device.battery_status) == (62, "replace_now")


def test_a_battery_event_keeps_what_happened_to_which_device(client, manager_a, org_a):
    event = BatteryEventFactory(device=DeviceFactory(organisation=org_a))
    client.force_login(manager_a)
    form = client.get(reverse("admin:devices_batteryevent_change", args=[event.pk])).context["adminform"].form
    assert {"device", "kind", "occurred_at"}.isdisjoint(form.fields)
    assert "part_serial" in form.fields


def test_the_device_admin_is_registered_with_big_table_settings():
    device_admin = admin.site._registry[Device]
    assert device_admin.show_full_result_count is False
    assert device_admin.list_per_page == 50
    assert {"organisation", "fleet", "model__manufacturer", "current_build"} <= set(device_admin.list_select_related)


def test_the_device_page_shows_an_identity_conflict_and_its_mdm_ids_and_a_manager_clears_it(client, manager_a, org_a):
    device = DeviceFactory(
        organisation=org_a,
        identity_conflict="A report gave IMEI 490154203237518, which device SN-OTHER has.",
        identity_conflict_at=timezone.now(),
    )
    DeviceSourceIdFactory(device=device, external_id="h0042")
    client.force_login(manager_a)

    body = client.get(reverse("admin:devices_device_change", args=[device.pk])).content.decode()
    assert "490154203237518" in body
    assert "headwind: h0042" in body

    response = _post_device(client, device, identity_conflict="")
    assert response.status_code == 302
    device.refresh_from_db()
    assert (device.identity_conflict, device.identity_conflict_at) == ("", None)
