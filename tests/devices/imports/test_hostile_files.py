"""Files are hostile until proven otherwise: zip bombs, malformed workbooks, absurd columns and lines end the
import with a reason the uploader can read, quickly and within bounded memory, through the admin and the command."""

from __future__ import annotations

import io
import resource
import zipfile

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from devices.choices import ImportStatus
from devices.imports import reading
from devices.imports.reading import ImportFileError, read_sheet
from devices.models import Device, ImportJob

pytestmark = pytest.mark.django_db
UPLOAD_DEVICES = reverse("admin:devices_device_import", args=["devices"])
HEADER = b"serial;imei;model\n"


def is_header(cells) -> bool:
    return any(str(cell).strip().lower() == "serial" for cell in cells if cell is not None)


def workbook(rows: list[list]) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def rezipped(data: bytes, replace: dict[str, bytes]) -> bytes:
    """``data`` (an XLSX) with some of its parts replaced, as a hostile tool would write it."""
    source, buffer = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            target.writestr(member.filename, replace.get(member.filename, source.read(member.filename)))
    return buffer.getvalue()


def zip_bomb(megabytes: int) -> bytes:
    """A real workbook whose sheet is padded with ``megabytes`` MB of spaces inside a cell: ~1000 to 1."""
    valid = workbook([["serial", "imei"], ["R58N1", None]])
    sheet = zipfile.ZipFile(io.BytesIO(valid)).read("xl/worksheets/sheet1.xml")
    padding = b" " * (megabytes * 2**20)
    return rezipped(valid, {"xl/worksheets/sheet1.xml": sheet.replace(b"<sheetData>", b"<sheetData>" + padding)})


def test_a_zip_bomb_is_refused_from_its_directory_before_anything_is_inflated():
    bomb = zip_bomb(64)
    assert len(bomb) < 200_000  # 64 MB of sheet in under 200 KB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImportFileError, match="compressed .* to 1"):
        read_sheet(bomb, is_header=is_header)
    # Nothing was inflated: the peak memory did not grow by the sheet's size.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 32 * 1024


def test_a_workbook_unpacking_past_the_limit_is_refused(settings):
    settings.IMPORT_XLSX_MAX_UNCOMPRESSED_BYTES = 2**20
    valid = workbook([["serial"], *[[f"R58N{i:07d}"] for i in range(60_000)]])
    with pytest.raises(ImportFileError, match=r"unpacks to \d+ MB; at most 1 MB"):
        read_sheet(valid, is_header=is_header)


def test_a_workbook_of_too_many_parts_is_refused(settings):
    settings.IMPORT_XLSX_MAX_MEMBERS = 5
    with pytest.raises(ImportFileError, match="parts; at most 5"):
        read_sheet(workbook([["serial"], ["R58N1"]]), is_header=is_header)


def test_a_real_inventory_workbook_passes_the_limits():
    rows = [["serial", "imei", "model"], *[[f"R58N{i:07d}", None, "Zebra TC21"] for i in range(20_000)]]
    sheet = read_sheet(workbook(rows), is_header=is_header)
    assert sum(1 for _ in sheet.rows) == 20_000


@pytest.mark.parametrize(
    "broken",
    [
        b"<worksheet xmlns='http://schemas.openxmlformats.org/spreadsheetml/2006/main'><sheetData><row><c",
        b"not xml at all \x00\x01",
    ],
    ids=["truncated-xml", "garbage"],
)
def test_a_malformed_workbook_is_a_reason_not_a_crash(broken):
    data = rezipped(workbook([["serial"], ["R58N1"]]), {"xl/worksheets/sheet1.xml": broken})
    with pytest.raises(ImportFileError):
        sheet = read_sheet(data, is_header=is_header)
        list(sheet.rows)


def test_a_zip_that_is_not_a_workbook_is_a_reason():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hello")
    with pytest.raises(ImportFileError, match="not a readable XLSX"):
        read_sheet(buffer.getvalue(), is_header=is_header)


def test_a_declared_dimension_of_17_billion_cells_is_not_padded():
    valid = workbook([["serial", "imei"], ["R58N1", None]])
    sheet_xml = zipfile.ZipFile(io.BytesIO(valid)).read("xl/worksheets/sheet1.xml")
    huge = rezipped(
        valid,
        {
            "xl/worksheets/sheet1.xml": sheet_xml.replace(
                b'<dimension ref="A1:B2" />', b'<dimension ref="A1:XFD1048576" />'
            )
        },
    )
    assert b"XFD1048576" in zipfile.ZipFile(io.BytesIO(huge)).read("xl/worksheets/sheet1.xml")
    sheet = read_sheet(huge, is_header=is_header)
    assert sheet.headers == ["serial", "imei"]
    assert [cells for _, cells in sheet.rows] == [["R58N1"]]  # as stored: the consumers read short rows


def test_a_workbook_row_of_too_many_columns_is_refused():
    data = workbook([["serial"], ["R58N1", *range(reading.MAX_COLUMNS)]])
    with pytest.raises(ImportFileError, match="columns; a file may have at most"):
        list(read_sheet(data, is_header=is_header).rows)


def test_a_million_column_csv_line_is_refused_by_its_length():
    data = HEADER + b";" * 1_000_000 + b"\n"
    with pytest.raises(ImportFileError, match="Line 2 is longer than"):
        list(read_sheet(data, is_header=is_header).rows)


def test_a_csv_of_too_many_columns_is_refused_naming_the_line():
    data = HEADER + b"R58N1;" + b"x;" * 300 + b"\n"
    with pytest.raises(ImportFileError, match="Line 2 has 302 columns"):
        list(read_sheet(data, is_header=is_header).rows)


def test_a_ten_megabyte_line_is_refused():
    data = HEADER + b'"' + b"a" * (10 * 2**20) + b'"\n'
    with pytest.raises(ImportFileError, match="longer than"):
        list(read_sheet(data, is_header=is_header).rows)


# --- Through the admin and the command ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("bomb.xlsx", zip_bomb(64), "compressed"),
        (
            "broken.xlsx",
            rezipped(workbook([["serial"], ["R58N1"]]), {"xl/worksheets/sheet1.xml": b"<x"}),
            "readable XLSX",
        ),
        ("wide.csv", HEADER + b";" * 1_000_000 + b"\n", "longer than"),
    ],
    ids=["zip-bomb", "malformed-xlsx", "million-columns"],
)
def test_a_hostile_upload_ends_its_job_failed_with_the_reason(
    client, manager_a, org_a, django_capture_on_commit_callbacks, name, content, reason
):
    client.force_login(manager_a)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(UPLOAD_DEVICES, {"organisation": org_a.pk, "file": SimpleUploadedFile(name, content)})
    job = ImportJob.objects.get()
    assert job.status == ImportStatus.FAILED
    assert reason in job.summary["error"]
    page = client.get(response.url).content.decode()
    assert reason in page
    assert not Device.objects.exists()


def test_an_unexpected_failure_ends_the_job_failed_not_pending(
    client, manager_a, org_a, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    # Whatever a reader did not foresee (here: openpyxl itself breaking) must still end the job.
    def broken_reader(*args, **kwargs):
        raise RuntimeError("a bug nobody foresaw")

    monkeypatch.setattr("devices.imports.services.read_sheet", broken_reader)
    client.force_login(manager_a)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(UPLOAD_DEVICES, {"organisation": org_a.pk, "file": SimpleUploadedFile("a.csv", HEADER)})
    job = ImportJob.objects.get()
    assert job.status == ImportStatus.FAILED
    assert "damaged or not a spreadsheet" in job.summary["error"]
    assert "a bug nobody foresaw" in caplog.text


def test_the_command_refuses_a_zip_bomb_with_its_reason(tmp_path, org_a):
    path = tmp_path / "bomb.xlsx"
    path.write_bytes(zip_bomb(64))
    with pytest.raises(CommandError, match="bomb.xlsx: Part xl/worksheets/sheet1.xml of this workbook is compressed"):
        call_command("import_devices", str(path), "--organisation", org_a.slug)
