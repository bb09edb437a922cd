"""Exports of the device list as CSV and XLSX: the filtered list, streamed, only the user's organisations,
typed cells, headers in the user's language, and nothing a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import datetime as dt
import io

import openpyxl
import pytest
from django.db import connection
from django.http import FileResponse, StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from devices import exports
from devices.models import Device
from tests.factories import DeviceFactory, FleetFactory, UserFactory

pytestmark = pytest.mark.django_db

CSV_URL = "admin:devices_device_export"
XLSX_URL = "admin:devices_device_export_xlsx"


def read_csv(response, delimiter: str = ",") -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    raw = b"".join(response.streaming_content)
    assert raw.startswith(b"\xef\xbb\xbf"), "a UTF-8 BOM, so Excel reads accents right"
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig")), delimiter=delimiter))


def read_xlsx(response) -> tuple[list[str], list[tuple]]:
    """Headers and rows of the one sheet, as openpyxl reads them back."""
    assert isinstance(response, FileResponse)
    assert response["Content-Type"] == exports.XLSX_CONTENT_TYPE
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    rows = list(sheet.iter_rows(values_only=True))
    return list(rows[0]), rows[1:]


def test_export_link_exports_the_filtered_list_of_the_managers_organisation(client, manager_a, org_a, org_b):
    fleet = FleetFactory(organisation=org_a, name="Bretagne")
    DeviceFactory(organisation=org_a, fleet=fleet, serial="A-BEHIND", compliance_status="behind", asset_tag="T1")
    DeviceFactory(organisation=org_a, serial="A-OK", compliance_status="up_to_date")
    DeviceFactory(organisation=org_b, serial="B-BEHIND", compliance_status="behind")
    client.force_login(manager_a)
    response = client.get(reverse(CSV_URL), {"compliance_status__exact": "behind"})
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="fleetpatch-devices-')
    rows = read_csv(response)
    assert [(r["serial number"], r["fleet"], r["asset tag"], r["compliance status"]) for r in rows] == [
        ("A-BEHIND", "Bretagne", "T1", "behind")
    ]


def test_the_xlsx_export_has_the_same_filtered_rows_with_typed_cells(client, manager_a, org_a, org_b):
    DeviceFactory(
        organisation=org_a,
        serial="A-BEHIND",
        compliance_status="behind",
        behind_since=dt.date(2026, 3, 2),
        security_patch_level=dt.date(2026, 1, 5),
        last_check_in_at=dt.datetime(2026, 3, 4, 9, 30, tzinfo=dt.UTC),
        builds_behind=2,
        battery_health_pct=81,
        is_waived=True,
    )
    DeviceFactory(organisation=org_a, serial="A-OK", compliance_status="up_to_date")
    DeviceFactory(organisation=org_b, serial="B-BEHIND", compliance_status="behind")
    client.force_login(manager_a)

    response = client.get(reverse(XLSX_URL), {"compliance_status__exact": "behind"})

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="fleetpatch-devices-')
    headers, rows = read_xlsx(response)
    assert len(rows) == 1
    row = dict(zip(headers, rows[0], strict=True))
    assert row["serial number"] == "A-BEHIND"
    assert row["behind since"] == dt.datetime(2026, 3, 2)  # a date cell (openpyxl reads dates as datetimes)
    assert row["security patch level"] == dt.datetime(2026, 1, 5)
    assert row["last check-in"] == dt.datetime(2026, 3, 4, 9, 30)  # TIME_ZONE is UTC in the tests
    assert row["builds behind"] == 2 and row["battery health (%)"] == 81
    assert row["waived"] is True
    assert row["retired at"] is None


def test_xlsx_date_cells_carry_a_date_number_format(org_a):
    DeviceFactory(organisation=org_a, security_patch_level=dt.date(2026, 1, 5), last_check_in_at=timezone.now())
    buffer = io.BytesIO()
    exports.write_xlsx(exports.DEVICES, Device.objects.all(), headers=exports.DEVICES.headers(), file=buffer)
    sheet = openpyxl.load_workbook(buffer).active
    headers = [cell.value for cell in sheet[1]]
    patch = sheet.cell(row=2, column=headers.index("security patch level") + 1)
    seen = sheet.cell(row=2, column=headers.index("last check-in") + 1)
    assert patch.is_date and patch.number_format == exports.XLSX_DATE_FORMAT
    assert seen.is_date and seen.number_format == exports.XLSX_DATETIME_FORMAT


def test_csv_dates_are_iso_8601(client, manager_a, org_a):
    DeviceFactory(
        organisation=org_a,
        security_patch_level=dt.date(2026, 1, 5),
        last_check_in_at=dt.datetime(2026, 3, 4, 9, 30, 12, 345, tzinfo=dt.UTC),
        is_waived=False,
    )
    client.force_login(manager_a)
    [row] = read_csv(client.get(reverse(CSV_URL)))
    assert row["security patch level"] == "2026-01-05"
    assert row["last check-in"] == "2026-03-04T09:30:12+00:00"
    assert row["waived"] == "false"
    assert row["retired at"] == ""


def test_a_french_user_gets_french_headers_and_a_semicolon_separated_csv(client, manager_a, org_a):
    DeviceFactory(organisation=org_a, serial="A-1", assignee="Léa Dupré")
    client.force_login(manager_a)
    response = client.get(reverse(CSV_URL), headers={"accept-language": "fr"})
    [row] = read_csv(response, delimiter=";")
    assert row["numéro de série"] == "A-1"
    assert row["attributaire"] == "Léa Dupré"
    headers, _rows = read_xlsx(client.get(reverse(XLSX_URL), headers={"accept-language": "fr"}))
    assert "numéro de série" in headers and "serial number" not in headers


def test_cells_that_a_spreadsheet_would_run_as_formulas_are_made_inert(client, manager_a, org_a):
    DeviceFactory(organisation=org_a, serial="A-1", asset_tag='=HYPERLINK("http://evil.example","x")', assignee="@SUM")
    DeviceFactory(organisation=org_a, serial="A-2", asset_tag="-2+3", assignee="+33 6 12")
    client.force_login(manager_a)

    rows = {r["serial number"]: r for r in read_csv(client.get(reverse(CSV_URL)))}
    assert rows["A-1"]["asset tag"] == '\'=HYPERLINK("http://evil.example","x")'
    assert rows["A-1"]["assignee"] == "'@SUM"
    assert (rows["A-2"]["asset tag"], rows["A-2"]["assignee"]) == ("'-2+3", "'+33 6 12")

    response = client.get(reverse(XLSX_URL))
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    cells = [cell for row in sheet.iter_rows(min_row=2) for cell in row]
    assert not [cell.coordinate for cell in cells if cell.data_type == "f"], "no formula cell"
    assert '\'=HYPERLINK("http://evil.example","x")' in [cell.value for cell in cells]


def test_fullwidth_formula_signs_are_made_inert_too(client, manager_a, org_a):
    # Excel and LibreOffice read a fullwidth "＝" as "=".
    DeviceFactory(organisation=org_a, serial="A-3", asset_tag="\uff1d1+1", assignee="\uff0bSUM(A1)")
    client.force_login(manager_a)
    rows = {r["serial number"]: r for r in read_csv(client.get(reverse(CSV_URL)))}
    assert (rows["A-3"]["asset tag"], rows["A-3"]["assignee"]) == ("'\uff1d1+1", "'\uff0bSUM(A1)")


def test_a_stored_control_character_does_not_break_the_xlsx_export(client, manager_a, org_a):
    # Stored before the edge refused control characters (issue #15): the export drops them, the rest stays.
    DeviceFactory(organisation=org_a, serial="A-4", asset_tag="TAG\u001b[31m-7", assignee="Ana\u0001")
    client.force_login(manager_a)
    response = client.get(reverse(XLSX_URL))
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    values = [cell.value for row in sheet.iter_rows(min_row=2) for cell in row]
    assert "TAG[31m-7" in values and "Ana" in values


def test_export_action_exports_the_selection(client, manager_a, org_a):
    devices = DeviceFactory.create_batch(3, organisation=org_a)
    client.force_login(manager_a)
    selection = {"_selected_action": [devices[0].pk, devices[2].pk]}
    changelist = reverse("admin:devices_device_changelist")
    response = client.post(changelist, {"action": "export_csv", **selection})
    assert sorted(r["serial number"] for r in read_csv(response)) == sorted([devices[0].serial, devices[2].serial])
    _headers, rows = read_xlsx(client.post(changelist, {"action": "export_xlsx", **selection}))
    assert sorted(row[0] for row in rows) == sorted([devices[0].serial, devices[2].serial])


def test_a_viewer_may_export_a_user_without_membership_may_not(client, viewer_a, org_a):
    DeviceFactory(organisation=org_a)
    client.force_login(viewer_a)
    assert len(read_csv(client.get(reverse(CSV_URL)))) == 1
    assert len(read_xlsx(client.get(reverse(XLSX_URL)))[1]) == 1

    client.force_login(UserFactory(username="nobody"))
    assert client.get(reverse(CSV_URL)).status_code == 403
    assert client.get(reverse(XLSX_URL)).status_code == 403


def test_a_manager_of_b_exports_nothing_of_a_even_filtering_on_a(client, manager_b, org_a, org_b):
    a_device = DeviceFactory(organisation=org_a, serial="A-SECRET")
    DeviceFactory(organisation=org_b, serial="B-1")
    client.force_login(manager_b)
    for url in (CSV_URL, XLSX_URL):
        for crafted in ({"organisation__id__exact": org_a.pk}, {"q": "A-SECRET"}, {"id__exact": a_device.pk}):
            response = client.get(reverse(url), crafted)
            body = b"".join(response.streaming_content) if response.status_code == 200 else response.content
            assert b"A-SECRET" not in body
    assert [r["serial number"] for r in read_csv(client.get(reverse(CSV_URL)))] == ["B-1"]
    assert [row[0] for row in read_xlsx(client.get(reverse(XLSX_URL)))[1]] == ["B-1"]


def test_an_unknown_filter_or_a_bad_value_is_a_400_naming_it(client, manager_a, org_a):
    client.force_login(manager_a)
    response = client.get(reverse(CSV_URL), {"last_check_in_at__gte": "yesterday"})
    assert response.status_code == 400
    assert "“yesterday”" in response.content.decode()
    assert client.get(reverse(XLSX_URL), {"no_such_field": "1"}).status_code == 400


def test_an_xlsx_larger_than_a_sheet_is_refused_with_a_message(client, manager_a, org_a, monkeypatch):
    monkeypatch.setattr(exports, "XLSX_MAX_ROWS", 2)
    DeviceFactory.create_batch(3, organisation=org_a)
    client.force_login(manager_a)
    response = client.get(reverse(XLSX_URL), {"channel__exact": "stable"}, follow=True)
    assert response.redirect_chain[-1][0].endswith("?channel__exact=stable")
    assert "export CSV" in response.content.decode()
    assert len(read_csv(client.get(reverse(CSV_URL)))) == 3  # CSV has no such limit


def test_the_changelist_offers_both_exports_of_what_it_shows(client, manager_a, org_a):
    client.force_login(manager_a)
    page = client.get(reverse("admin:devices_device_changelist"), {"compliance_status__exact": "behind"}).content
    assert f'{reverse(CSV_URL)}?compliance_status__exact=behind"'.encode() in page
    assert f'{reverse(XLSX_URL)}?compliance_status__exact=behind"'.encode() in page


def _export_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse(url))
        b"".join(response.streaming_content)
    return len(queries)


def test_the_export_query_count_does_not_grow_with_the_number_of_devices(
    client, manager_a, org_a, django_assert_max_num_queries
):
    fleet = FleetFactory(organisation=org_a)
    DeviceFactory.create_batch(2, organisation=org_a, fleet=fleet)
    client.force_login(manager_a)
    few = {url: _export_queries(client, url) for url in (CSV_URL, XLSX_URL)}
    DeviceFactory.create_batch(40, organisation=org_a, fleet=fleet)
    for url, queries in few.items():
        with django_assert_max_num_queries(queries):
            response = client.get(reverse(url))
            b"".join(response.streaming_content)


def test_the_rows_are_one_query_in_chunks(org_a, django_assert_num_queries, monkeypatch):
    monkeypatch.setattr(exports, "CHUNK", 7)
    fleet = FleetFactory(organisation=org_a)
    DeviceFactory.create_batch(30, organisation=org_a, fleet=fleet)
    with django_assert_num_queries(1):
        chunks = list(exports.csv_chunks(exports.DEVICES, Device.objects.all(), headers=["h"] * 23, delimiter=","))
    assert len(chunks) == 1 + 5  # header, then 30 lines in chunks of 7
    assert sum(chunk.count("\r\n") for chunk in chunks) == 31
