"""Exports filter honestly (issue #15, item 8): a filter value the user may not use answers an empty result,
never the unfiltered list, on the lists and on their CSV/XLSX exports."""

from __future__ import annotations

import io

import openpyxl
import pytest

from tests.factories import DeviceFactory, FleetFactory

pytestmark = pytest.mark.django_db


def body(response) -> bytes:
    """The page, the CSV, or the XLSX's cell values, as bytes to search."""
    data = b"".join(response.streaming_content) if getattr(response, "streaming", False) else response.content
    if data.startswith(b"PK"):
        sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True).worksheets[0]
        return " ".join(str(v) for row in sheet.iter_rows(values_only=True) for v in row).encode()
    return data


@pytest.mark.parametrize(
    "path", ["/admin/devices/device/", "/admin/devices/device/export.csv", "/admin/devices/device/export.xlsx"]
)
def test_another_organisations_id_filters_to_nothing_not_to_everything(client, manager_a, org_a, org_b, path):
    DeviceFactory(organisation=org_a, serial="MINE-0001")
    DeviceFactory(organisation=org_b, serial="THEIRS-0001")
    client.force_login(manager_a)

    for params in (f"organisation__id__exact={org_b.pk}", "fleet__id__exact=999999"):
        response = client.get(f"{path}?{params}")
        assert response.status_code == 200
        assert b"MINE-0001" not in body(response) and b"THEIRS-0001" not in body(response), params

    # The manager's own organisation and fleet still filter as before.
    fleet = FleetFactory(organisation=org_a)
    DeviceFactory(organisation=org_a, fleet=fleet, serial="FLEET-0001")
    own = body(client.get(f"{path}?organisation__id__exact={org_a.pk}&fleet__id__exact={fleet.pk}"))
    assert b"FLEET-0001" in own and b"MINE-0001" not in own
