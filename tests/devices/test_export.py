"""CSV export of the device list: the filtered list, streamed, and only the user's organisations."""

from __future__ import annotations

import csv
import io

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse

from tests.factories import DeviceFactory, FleetFactory

pytestmark = pytest.mark.django_db


def read_csv(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_export_link_exports_the_filtered_list_of_the_managers_organisation(client, manager_a, org_a, org_b):
    fleet = FleetFactory(organisation=org_a, name="Bretagne")
    DeviceFactory(organisation=org_a, fleet=fleet, serial="A-BEHIND", compliance_status="behind", asset_tag="T1")
    DeviceFactory(organisation=org_a, serial="A-OK", compliance_status="up_to_date")
    DeviceFactory(organisation=org_b, serial="B-BEHIND", compliance_status="behind")
    client.force_login(manager_a)
    response = client.get(reverse("admin:devices_device_export"), {"compliance_status__exact": "behind"})
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="fleetpatch-devices-')
    rows = read_csv(response)
    assert [(r["serial number"], r["fleet"], r["asset tag"], r["compliance status"]) for r in rows] == [
        ("A-BEHIND", "Bretagne", "T1", "behind")
    ]


def test_export_action_exports_the_selection(client, manager_a, org_a):
    devices = DeviceFactory.create_batch(3, organisation=org_a)
    client.force_login(manager_a)
    response = client.post(
        reverse("admin:devices_device_changelist"),
        {"action": "export_csv", "_selected_action": [devices[0].pk, devices[2].pk]},
    )
    assert sorted(r["serial number"] for r in read_csv(response)) == sorted([devices[0].serial, devices[2].serial])


def test_a_viewer_may_export_a_user_without_membership_may_not(client, viewer_a, org_a):
    DeviceFactory(organisation=org_a)
    client.force_login(viewer_a)
    assert len(read_csv(client.get(reverse("admin:devices_device_export")))) == 1
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="nobody"))
    assert client.get(reverse("admin:devices_device_export")).status_code == 403


def test_the_export_is_one_query_whatever_the_number_of_devices(org_a, django_assert_num_queries):
    from devices.exports import device_csv_lines
    from devices.models import Device

    fleet = FleetFactory(organisation=org_a)
    DeviceFactory.create_batch(30, organisation=org_a, fleet=fleet)
    with django_assert_num_queries(1):
        lines = list(device_csv_lines(Device.objects.all()))
    assert len(lines) == 32  # BOM, header, 30 devices
