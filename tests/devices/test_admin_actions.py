"""Bulk actions on the device list: battery replacement, waiver, recompute, retire — scoped and set-based."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from devices.models import BatteryEvent, Device, Waiver
from tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:devices_device_changelist")


def act(client, action: str, devices, **data):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [d.pk for d in devices], **data})


def test_battery_replacement_asks_for_the_details_then_records_it_for_each_device(client, manager_a, org_a):
    devices = DeviceFactory.create_batch(3, organisation=org_a, battery_health_pct=60, battery_status="replace_now")
    client.force_login(manager_a)
    form = act(client, "record_battery_replacement", devices[:2])
    assert form.status_code == 200 and b"replaced on" in form.content
    assert not BatteryEvent.objects.exists()

    today = timezone.now().date()
    response = act(
        client,
        "record_battery_replacement",
        devices[:2],
        apply="1",
        occurred_on=today.isoformat(),
        reason="swollen",
        performed_by="Atelier Rennes",
    )
    assert response.status_code == 302
    events = BatteryEvent.objects.order_by("device_id")
    assert [(e.device_id, e.kind, e.reason, e.recorded_by) for e in events] == [
        (d.pk, "replacement", "swollen", manager_a) for d in devices[:2]
    ]
    replaced = Device.objects.get(pk=devices[0].pk)
    assert (replaced.battery_installed_on, replaced.battery_health_pct, replaced.battery_status) == (today, None, "ok")
    assert Device.objects.get(pk=devices[2].pk).battery_status == "replace_now"


def test_a_replacement_in_the_future_is_refused_with_a_message(client, manager_a, org_a):
    device = DeviceFactory(organisation=org_a)
    client.force_login(manager_a)
    tomorrow = (timezone.now().date() + dt.timedelta(days=2)).isoformat()
    response = act(client, "record_battery_replacement", [device], apply="1", occurred_on=tomorrow)
    assert response.status_code == 200 and b"cannot be in the future" in response.content
    assert not BatteryEvent.objects.exists()


def test_grant_waiver_marks_the_devices_waived_until_the_expiry(client, manager_a, org_a):
    devices = DeviceFactory.create_batch(2, organisation=org_a)
    client.force_login(manager_a)
    expires = (timezone.now().date() + dt.timedelta(days=30)).isoformat()
    act(client, "grant_waiver", devices, apply="1", reason="field mission", expires_on=expires)
    assert Waiver.objects.filter(device__in=devices, reason="field mission").count() == 2
    assert set(Device.objects.values_list("is_waived", flat=True)) == {True}


def test_recompute_and_retire(client, manager_a, org_a):
    device = DeviceFactory(organisation=org_a, compliance_status="up_to_date", last_check_in_at=None)
    client.force_login(manager_a)
    act(client, "recompute_compliance", [device])
    assert Device.objects.get(pk=device.pk).compliance_status == "unknown"
    act(client, "retire", [device])
    assert Device.objects.get(pk=device.pk).retired_at is not None


def test_actions_never_touch_another_organisations_device(client, manager_a, org_a, org_b):
    mine, theirs = DeviceFactory(organisation=org_a), DeviceFactory(organisation=org_b)
    client.force_login(manager_a)
    act(client, "retire", [mine, theirs])
    assert Device.objects.get(pk=theirs.pk).retired_at is None
    act(client, "record_battery_replacement", [theirs], apply="1", occurred_on=timezone.now().date().isoformat())
    assert not BatteryEvent.objects.filter(device=theirs).exists()


def test_a_viewer_is_not_offered_the_write_actions(client, viewer_a, org_a):
    device = DeviceFactory(organisation=org_a)
    client.force_login(viewer_a)
    actions = [value for value, _label in client.get(CHANGELIST).context["action_form"].fields["action"].choices]
    assert "export_csv" in actions
    assert not {"retire", "grant_waiver", "record_battery_replacement", "recompute_compliance"} & set(actions)
    act(client, "retire", [device])
    assert Device.objects.get(pk=device.pk).retired_at is None


def test_battery_replacement_over_a_large_selection_is_a_few_statements(org_a, django_assert_max_num_queries):
    from devices.services import devices_battery_replace

    DeviceFactory.create_batch(60, organisation=org_a)
    with django_assert_max_num_queries(10):
        count = devices_battery_replace(devices=Device.objects.all(), occurred_at=timezone.now())
    assert count == 60 == BatteryEvent.objects.count()


def test_last_seen_end_of_support_and_build_filters(admin_client, org_a):
    from tests.factories import DeviceModelFactory

    now = timezone.now()
    ended = DeviceModelFactory(security_support_until=now.date() - dt.timedelta(days=1))
    soon = DeviceModelFactory(security_support_until=now.date() + dt.timedelta(days=90))
    recent = DeviceFactory(organisation=org_a, last_check_in_at=now - dt.timedelta(hours=2), model=soon)
    old = DeviceFactory(organisation=org_a, last_check_in_at=now - dt.timedelta(days=45), model=ended)
    never = DeviceFactory(organisation=org_a, last_check_in_at=None, reported_build_number="B.42")

    def serials(**params):
        return {d.serial for d in admin_client.get(CHANGELIST, params).context["cl"].result_list}

    assert serials(last_seen="1d") == {recent.serial}
    assert serials(last_seen="older") == {old.serial}
    assert serials(last_seen="never") == {never.serial}
    assert serials(end_of_support="ended") == {old.serial}
    assert serials(end_of_support="6m") == {recent.serial}
    assert serials(build="B.42") == {never.serial}
