"""Importing devices from spreadsheets: realistic files, idempotent re-import, per-row errors, scoping."""

from __future__ import annotations

import datetime as dt
import io
import math
from pathlib import Path

import openpyxl
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from devices.compliance import engine as compliance
from devices.imports import columns, device_rows
from devices.imports.reading import ImportFileError
from devices.imports.results import Outcome, RowResult
from devices.imports.services import _write_devices, devices_import
from devices.models import Device, StatusChange
from fleet.models import Fleet
from tests.factories import (
    CheckInFactory,
    DeviceFactory,
    DeviceModelFactory,
    FleetFactory,
    ManufacturerFactory,
    OSBuildFactory,
)
from updates.models import DeviceModel

pytestmark = pytest.mark.django_db
DATA = Path(__file__).resolve().parents[2] / "data" / "imports"
FRENCH_EXCEL = (DATA / "inventaire-excel-fr.csv").read_bytes()
INTUNE_EXPORT = (DATA / "intune-export-en.csv").read_bytes()
VALID_IMEI = "354678100001010"


@pytest.fixture
def core_z5(db):
    crosscall = ManufacturerFactory(name="Crosscall", slug="crosscall")
    model = DeviceModelFactory(manufacturer=crosscall, name="Core-Z5", slug="core-z5")
    OSBuildFactory(model=model, build_number="UQ1A.240105.004")
    return model


def outcomes(result) -> list[tuple[int, str, str]]:
    return [(row.line, row.serial, str(row.outcome)) for row in result.rows]


def xlsx(rows: list[list]) -> bytes:
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# --- Realistic files ---------------------------------------------------------------------------------


def test_a_french_excel_csv_in_windows_1252_with_semicolons_is_imported_row_by_row(org_a, core_z5):
    result = devices_import(organisation=org_a, data=FRENCH_EXCEL)

    assert outcomes(result) == [
        (2, "CZ5-000101", "created"),
        (3, "CZ5-000102", "failed"),  # IMEI whose check digit is wrong
        (6, "CZ5-000103", "created"),
        (7, "CZ5-000101", "failed"),  # the same serial again
        (8, "TC58-0001", "failed"),  # a model the catalogue does not know
    ]
    assert result.counts() == {"created": 2, "updated": 0, "unchanged": 0, "failed": 3, "skipped": 2}
    messages = {row.line: row.message for row in result.failures}
    assert "Luhn" in messages[3]
    assert "line 2" in messages[7]
    assert "'Zebra TC58' is not in the catalogue" in messages[8]
    device = Device.objects.select_related("fleet", "model", "current_build").get(serial="CZ5-000101")
    assert (device.imei, device.asset_tag, device.assignee) == (VALID_IMEI, "INV-0101", "Élodie Lefèvre")
    assert (device.model, device.fleet.name) == (core_z5, "Gendarmerie Rennes")
    assert device.current_build.build_number == "UQ1A.240105.004"
    assert device.security_patch_level == dt.date(2024, 1, 5)  # 05/01/2024 is the 5th of January
    assert device.battery_installed_on == dt.date(2023, 3, 12)
    assert not Device.objects.filter(serial__in=["CZ5-000102", "TC58-0001"]).exists()


def test_an_english_mdm_export_with_a_utf8_bom_is_imported_and_unknown_columns_are_listed(org_a, core_z5):
    result = devices_import(organisation=org_a, data=INTUNE_EXPORT)

    assert result.counts() == {"created": 2, "updated": 0, "unchanged": 0, "failed": 0, "skipped": 1}
    assert result.ignored_columns == ["Last check-in"]
    device = Device.objects.get(serial="CZ5-000201")
    assert (device.asset_tag, device.fleet.name, device.battery_installed_on) == (
        "A-201",
        "Field Ops",
        dt.date(2024, 2, 29),
    )
    assert Device.objects.get(serial="CZ5-000202").assignee == "Smith, John"


def test_an_xlsx_with_dates_as_excel_serial_numbers_and_numeric_imeis_is_imported(org_a, core_z5):
    data = xlsx(
        [
            ["Inventaire du parc au 01/10/2025"],  # a title above the header, as exports often have
            [],
            ["Numéro de série", "IMEI", "Modèle", "Niveau de correctif", "Batterie installée le"],
            ["XL-1", int(VALID_IMEI), "Core Z5", 45296, 45000],  # Excel serials: 2024-01-05, 2023-03-15
            ["XL-2", None, "core-z5", dt.datetime(2024, 2, 5), None],
            [None, None, None, None, None],
        ]
    )

    result = devices_import(organisation=org_a, data=data)

    assert outcomes(result) == [(4, "XL-1", "created"), (5, "XL-2", "created")]
    assert result.skipped_lines == 1
    first = Device.objects.get(serial="XL-1")
    assert (first.imei, first.security_patch_level, first.battery_installed_on) == (
        VALID_IMEI,
        dt.date(2024, 1, 5),
        dt.date(2023, 3, 15),
    )
    assert Device.objects.get(serial="XL-2").security_patch_level == dt.date(2024, 2, 5)


def test_excel_unicode_text_in_utf16_with_tabs_is_imported(org_a, core_z5):
    data = "N° de série\tModèle\tUtilisateur\nU-1\tCore-Z5\tRenée Mérieux\n".encode("utf-16")
    result = devices_import(organisation=org_a, data=data)
    assert outcomes(result) == [(2, "U-1", "created")]
    assert Device.objects.get(serial="U-1").assignee == "Renée Mérieux"


def test_model_names_match_the_catalogue_whatever_their_case_spaces_and_dashes_and_are_never_invented(org_a, core_z5):
    DeviceModelFactory(manufacturer=ManufacturerFactory(name="Samsung", slug="samsung"), name="Galaxy XCover 7")
    data = b"serial;model\nA;CROSSCALL core z5\nB;galaxy x-cover 7\nC;Galaxy XCover 8\n"
    models_before = DeviceModel.objects.count()

    result = devices_import(organisation=org_a, data=data)

    assert outcomes(result) == [(2, "A", "created"), (3, "B", "created"), (4, "C", "failed")]
    assert Device.objects.get(serial="B").model.name == "Galaxy XCover 7"
    assert DeviceModel.objects.count() == models_before


def test_a_model_name_shared_by_two_manufacturers_needs_the_manufacturer_column(org_a, core_z5):
    DeviceModelFactory(manufacturer=ManufacturerFactory(name="Other", slug="other"), name="Core Z5")

    ambiguous = devices_import(organisation=org_a, data=b"serial,model\nA,Core-Z5\n")
    named = devices_import(organisation=org_a, data=b"serial,manufacturer,model\nA,Crosscall,Core-Z5\n")

    assert "several manufacturers" in ambiguous.failures[0].message
    assert outcomes(named) == [(2, "A", "created")]
    assert Device.objects.get(serial="A").model == core_z5


# --- Idempotence and updates --------------------------------------------------------------------------


def test_reimporting_the_same_file_changes_nothing(org_a, core_z5, django_assert_max_num_queries):
    devices_import(organisation=org_a, data=FRENCH_EXCEL)
    before = list(Device.objects.order_by("serial").values())
    transitions = StatusChange.objects.count()

    with django_assert_max_num_queries(12):  # read and compare only: unchanged rows are not written
        again = devices_import(organisation=org_a, data=FRENCH_EXCEL)

    assert again.counts() == {"created": 0, "updated": 0, "unchanged": 2, "failed": 3, "skipped": 2}
    assert list(Device.objects.order_by("serial").values()) == before
    assert StatusChange.objects.count() == transitions
    assert Fleet.objects.filter(organisation=org_a).count() == 2


def test_a_changed_cell_updates_the_device_and_an_empty_cell_keeps_the_current_value(org_a, core_z5):
    device = DeviceFactory(organisation=org_a, serial="S1", asset_tag="OLD", assignee="Ann", model=core_z5)

    result = devices_import(organisation=org_a, data=b"serial,asset tag,assignee\nS1,NEW,\n")

    assert outcomes(result) == [(2, "S1", "updated")]
    assert result.rows[0].message == "Changed: asset tag."
    device.refresh_from_db()
    assert (device.asset_tag, device.assignee, device.model) == ("NEW", "Ann", core_z5)


def test_a_model_change_recomputes_the_devices_compliance(org_a, core_z5):
    old = DeviceModelFactory(launched_on=dt.date(2016, 1, 1), security_support_until=dt.date(2020, 1, 1))
    device = DeviceFactory(organisation=org_a, serial="S1", model=old)
    check_in = CheckInFactory(device=device)
    Device.objects.filter(pk=device.pk).update(last_check_in_at=check_in.reported_at)
    compliance.recompute(device_ids=[device.pk])
    assert Device.objects.get(pk=device.pk).compliance_status == "unsupported"

    devices_import(organisation=org_a, data=b"serial,model\nS1,Core-Z5\n")

    device.refresh_from_db()
    assert device.model == core_z5
    assert device.compliance_status != "unsupported"
    assert device.status_changes.filter(from_status="unsupported", reason="imported").exists()


def test_os_build_and_patch_level_are_kept_when_the_device_reports_them_itself(org_a, core_z5):
    device = DeviceFactory(organisation=org_a, serial="S1", model=core_z5)
    check_in = CheckInFactory(device=device, build_number="UQ1A.240205.002", security_patch_level=dt.date(2024, 2, 5))
    Device.objects.filter(pk=device.pk).update(
        last_check_in_at=check_in.reported_at,
        reported_build_number="UQ1A.240205.002",
        security_patch_level=dt.date(2024, 2, 5),
    )

    result = devices_import(organisation=org_a, data=b"serial,os build,patch level\nS1,UQ1A.240105.004,2024-01-05\n")

    assert outcomes(result) == [(2, "S1", "unchanged")]
    assert "reports them itself" in result.rows[0].message
    device.refresh_from_db()
    assert (device.reported_build_number, device.security_patch_level) == ("UQ1A.240205.002", dt.date(2024, 2, 5))


def test_an_older_battery_date_never_replaces_a_newer_one(org_a, core_z5):
    device = DeviceFactory(organisation=org_a, serial="S1", battery_installed_on=dt.date(2025, 1, 10))

    result = devices_import(organisation=org_a, data=b"serial,battery installed on\nS1,01/06/2023\n")

    assert outcomes(result) == [(2, "S1", "unchanged")]
    device.refresh_from_db()
    assert device.battery_installed_on == dt.date(2025, 1, 10)


def test_imported_devices_get_their_battery_status_from_the_engine(org_a, core_z5):
    devices_import(organisation=org_a, data=b"serial,battery installed on\nOLD,2019-01-01\nNEW,2025-10-01\n")
    assert dict(Device.objects.values_list("serial", "battery_status")) == {"OLD": "due", "NEW": "ok"}


def test_unknown_fleets_are_created_once_matching_existing_fleets_by_name_or_slug(org_a, core_z5):
    FleetFactory(organisation=org_a, name="Brest", slug="brest")
    data = b"serial;flotte\nA;BREST\nB;Gendarmerie Rennes\nC;gendarmerie rennes\n"

    preview = devices_import(organisation=org_a, data=data, dry_run=True)
    assert preview.fleets_created == ["Gendarmerie Rennes"]
    assert not Fleet.objects.filter(name="Gendarmerie Rennes").exists()

    result = devices_import(organisation=org_a, data=data)
    assert result.counts()["created"] == 3
    assert dict(Device.objects.values_list("serial", "fleet__name")) == {
        "A": "Brest",
        "B": "Gendarmerie Rennes",
        "C": "Gendarmerie Rennes",
    }


def test_a_dry_run_reports_the_same_outcomes_and_writes_nothing(org_a, core_z5):
    dry = devices_import(organisation=org_a, data=FRENCH_EXCEL, dry_run=True)
    assert not Device.objects.exists()
    assert not Fleet.objects.exists()
    real = devices_import(organisation=org_a, data=FRENCH_EXCEL)
    assert outcomes(dry) == outcomes(real)


def test_a_large_file_is_written_in_a_number_of_queries_that_does_not_grow_with_its_rows(
    org_a, core_z5, django_assert_max_num_queries
):
    lines = ["serial,model,asset tag"] + [f"S{i:05d},Core-Z5,T{i}" for i in range(600)]
    # On SQLite Django splits a bulk INSERT into batches of 999 parameters, so each new Device column may cost
    # one more batch there; on PostgreSQL the devices are one INSERT. The rest is a fixed 14 statements at most.
    columns = len([f for f in Device._meta.concrete_fields if not f.primary_key])
    inserts = math.ceil(600 / (999 // columns)) if connection.vendor == "sqlite" else 1
    with django_assert_max_num_queries(14 + inserts):
        result = devices_import(organisation=org_a, data="\n".join(lines).encode())
    assert result.counts()["created"] == 600


# --- Bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2024-03-25", dt.date(2024, 3, 25)),
        ("25/03/2024", dt.date(2024, 3, 25)),
        ("05/03/2024", dt.date(2024, 3, 5)),  # day first
        ("03/25/2024", dt.date(2024, 3, 25)),  # 25 cannot be a month
        ("25.03.24", dt.date(2024, 3, 25)),
        ("2024-03", dt.date(2024, 3, 1)),
        ("2024-03-25T10:00:00", dt.date(2024, 3, 25)),
        (45376, dt.date(2024, 3, 25)),
        (45376.5, dt.date(2024, 3, 25)),
        ("45376", dt.date(2024, 3, 25)),
        (dt.datetime(2024, 3, 25, 8, 0), dt.date(2024, 3, 25)),
    ],
)
def test_dates_are_read_as_spreadsheets_write_them(cell, expected):
    assert columns.parse_date(cell, label="date") == expected


@pytest.mark.parametrize("cell", ["31/02/2024", "tomorrow", "12", "2024-13-01"])
def test_a_cell_that_is_no_date_says_so(cell):
    with pytest.raises(columns.CellError, match="is not a date"):
        columns.parse_date(cell, label="patch level")


def test_headers_are_matched_without_case_accents_or_punctuation():
    mapped = columns.map_headers(
        ["  N° DE SÉRIE ", "Modèle", "n° d’inventaire", "Niveau de correctif", "Notes"], columns.DEVICE_COLUMNS
    )
    assert mapped.index == {"serial": 0, "model": 1, "asset_tag": 2, "patch_level": 3}
    assert mapped.ignored == ["Notes"]


def test_a_file_without_a_serial_number_column_is_refused_with_a_message(org_a):
    with pytest.raises(ImportFileError, match="No header line"):
        devices_import(organisation=org_a, data=b"name,model\nA,B\n")


def test_an_empty_or_broken_file_is_refused_with_a_message(org_a):
    with pytest.raises(ImportFileError, match="empty"):
        devices_import(organisation=org_a, data=b"  \n")
    with pytest.raises(ImportFileError, match="XLSX"):
        devices_import(organisation=org_a, data=b"PK\x03\x04 not really a zip")


def test_bad_cells_fail_their_row_with_the_column_and_the_reason_and_the_good_rows_are_imported(org_a, core_z5):
    data = (
        "serial,imei,patch level,asset tag\n"
        "GOOD,,2024-01-05,\n"
        "FUTURE,,2999-01-01,\n"
        "LONG,,,{}\n"
        ",,2024-01-05,\n"
        "SHORT,12345,,\n"
    ).format("x" * 65)

    result = devices_import(organisation=org_a, data=data.encode())

    assert [(row.serial, row.outcome) for row in result.rows] == [
        ("GOOD", "created"),
        ("FUTURE", "failed"),
        ("LONG", "failed"),
        ("", "failed"),
        ("SHORT", "failed"),
    ]
    reasons = [row.message for row in result.failures]
    assert reasons[0].startswith("security patch level:") and "future" in reasons[0]
    assert reasons[1].startswith("asset tag: at most 64")
    assert reasons[2].startswith("serial number: required")
    assert reasons[3].startswith("IMEI: An IMEI has exactly 15 digits")


def test_an_imei_already_used_by_another_device_fails_the_row(org_a, core_z5):
    DeviceFactory(organisation=org_a, serial="OWNER", imei=VALID_IMEI)
    result = devices_import(organisation=org_a, data=f"serial,imei\nOTHER,{VALID_IMEI}\n".encode())
    assert result.failures[0].message == "IMEI: already the IMEI of device OWNER."
    assert not Device.objects.filter(serial="OTHER").exists()


# --- Organisation scoping -----------------------------------------------------------------------------


def test_a_serial_of_another_organisations_device_is_a_row_error_never_an_update_of_it(org_a, org_b, core_z5):
    theirs = DeviceFactory(organisation=org_b, serial="SHARED", asset_tag="B-1", imei=None)
    other_imei = DeviceFactory(organisation=org_b, serial="B-2", imei=VALID_IMEI)

    result = devices_import(
        organisation=org_a, data=f"serial,asset tag,imei\nSHARED,A-1,\nMINE,A-2,{VALID_IMEI}\n".encode()
    )

    assert [row.message for row in result.failures] == [
        "serial number: a device of another organisation has this serial number.",
        "IMEI: a device of another organisation has this IMEI.",
    ]
    theirs.refresh_from_db()
    assert (theirs.organisation, theirs.asset_tag) == (org_b, "B-1")
    assert not Device.objects.filter(organisation=org_a).exists()
    assert Device.objects.get(pk=other_imei.pk).imei == VALID_IMEI


def test_a_row_naming_another_organisation_fails(org_a, org_b, core_z5):
    result = devices_import(
        organisation=org_a, data=f"organisation,serial\n{org_a.slug},A1\n{org_b.name},B1\n".encode()
    )
    assert outcomes(result) == [(2, "A1", "created"), (3, "B1", "failed")]


# --- The command --------------------------------------------------------------------------------------


def test_the_command_prints_the_counts_and_writes_every_rows_result(org_a, core_z5, tmp_path, capsys):
    source = tmp_path / "inventaire.csv"
    source.write_bytes(FRENCH_EXCEL)
    result_file = tmp_path / "result.csv"

    call_command("import_devices", str(source), "--organisation", org_a.slug, "--result", str(result_file))

    out, err = capsys.readouterr()
    assert "inventaire.csv: 2 created, 0 updated, 0 unchanged, 3 failed, 2 empty lines skipped." in out
    assert "Fleets created: Gendarmerie Brest, Gendarmerie Rennes" in out
    assert "line 8 (TC58-0001): model: 'Zebra TC58' is not in the catalogue" in err
    lines = result_file.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "line,serial number,result,reason"
    assert lines[1] == "2,CZ5-000101,created,"
    assert len(lines) == 6


def test_the_result_csv_never_hands_a_formula_to_a_spreadsheet(org_a):
    result = devices_import(organisation=org_a, data=b'serial,model\n"=HYPERLINK(""http://x"")",Nokia 3310\n')
    assert result.to_csv().splitlines()[1].startswith("2,\"'=HYPERLINK(")


@pytest.mark.parametrize("serial", ["-2+3", "\uff1dcmd|'/c calc'!A0"], ids=["minus", "fullwidth-equals"])
def test_the_result_csv_makes_every_formula_start_inert(org_a, serial):
    result = devices_import(organisation=org_a, data=f"serial;model\n{serial};Nokia 3310\n".encode())
    assert result.to_csv().splitlines()[1].split(",", 2)[1].lstrip('"').startswith("'")


def test_the_command_dry_run_writes_nothing(org_a, core_z5, tmp_path, capsys):
    source = tmp_path / "inventaire.csv"
    source.write_bytes(FRENCH_EXCEL)
    call_command("import_devices", str(source), "--organisation", org_a.slug, "--dry-run")
    assert "(dry run, nothing written): 2 to create" in capsys.readouterr().out
    assert not Device.objects.exists()


def test_the_command_fails_when_nothing_could_be_read(org_a, core_z5, tmp_path):
    unreadable = tmp_path / "notes.csv"
    unreadable.write_text("hello,world\n1,2\n")
    with pytest.raises(CommandError, match="No header line"):
        call_command("import_devices", str(unreadable), "--organisation", org_a.slug)
    all_bad = tmp_path / "bad.csv"
    all_bad.write_text("serial,model\nA,Nokia 3310\n")
    with pytest.raises(CommandError, match="no row could be imported"):
        call_command("import_devices", str(all_bad), "--organisation", org_a.slug)
    with pytest.raises(CommandError, match="No organisation"):
        call_command("import_devices", str(all_bad), "--organisation", "nope")


def test_a_chunk_the_database_refuses_is_written_row_by_row_so_only_the_conflicting_row_fails(org_a, core_z5):
    """What happens when another write takes an IMEI between the plan and the write (a race): the
    database's unique constraint refuses the chunk, and its other rows are still written."""
    DeviceFactory(organisation=org_a, serial="RACER", imei=VALID_IMEI)
    plan = device_rows.ChunkPlan(
        devices=[{"serial": "GOOD", "asset_tag": "G"}, {"serial": "LATE", "imei": VALID_IMEI}],
        results=[RowResult(2, "GOOD", Outcome.CREATED), RowResult(3, "LATE", Outcome.CREATED)],
        recompute={"GOOD", "LATE"},
    )

    _write_devices(plan, organisation=org_a, now=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))

    assert [(row.serial, row.outcome) for row in plan.results] == [("GOOD", "created"), ("LATE", "failed")]
    assert "conflicts with another device" in plan.results[1].message
    assert set(Device.objects.values_list("serial", flat=True)) == {"RACER", "GOOD"}
    assert Device.objects.get(serial="GOOD").status_changes.count() == 0


def test_an_unknown_model_in_an_import_suggests_the_nearest_known_names(org_a, core_z5):
    data = b"serial,manufacturer,model\nCZ5-9,Crosscall,Core-Z6\n"
    result = devices_import(organisation=org_a, data=data)

    (failure,) = result.failures
    assert "'Core-Z6' is not in the catalogue" in failure.message
    assert "Did you mean Crosscall Core-Z5?" in failure.message


def test_a_model_code_alias_and_a_manufacturer_alias_name_the_model_in_an_import(org_a, core_z5):
    from updates.services import manufacturer_alias_add, model_alias_add

    model_alias_add(model=core_z5, name="CZ5-EU")
    manufacturer_alias_add(manufacturer=core_z5.manufacturer, name="Crosscall SAS")
    data = b"serial,manufacturer,model\nCZ5-10,Crosscall SAS,cz5 eu\nCZ5-11,,Crosscall SAS CZ5-EU\n"
    result = devices_import(organisation=org_a, data=data)

    assert result.counts()["created"] == 2, [row.message for row in result.failures]
    assert set(Device.objects.filter(serial__in=["CZ5-10", "CZ5-11"]).values_list("model", flat=True)) == {core_z5.pk}


def test_a_row_with_a_placeholder_serial_fails_and_the_others_are_imported(org_a, core_z5):
    result = devices_import(organisation=org_a, data=b"serial,model\nunknown,Core-Z5\nREAL-1,Core-Z5\n")

    assert result.counts()["created"] == 1
    failed = [row for row in result.rows if row.outcome == Outcome.FAILED]
    assert len(failed) == 1 and "placeholder" in failed[0].message
