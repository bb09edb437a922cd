"""The admin's imports: upload → preview → confirm → downloadable result, scoped to what the user manages."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from devices.models import BatteryEvent, Device, ImportJob
from tests.factories import DeviceFactory, DeviceModelFactory, ManufacturerFactory

pytestmark = pytest.mark.django_db
DATA = Path(__file__).resolve().parents[2] / "data" / "imports"
UPLOAD_DEVICES = reverse("admin:devices_device_import", args=["devices"])
UPLOAD_BATTERIES = reverse("admin:devices_device_import", args=["battery-replacements"])


@pytest.fixture
def core_z5(db):
    return DeviceModelFactory(manufacturer=ManufacturerFactory(name="Crosscall", slug="crosscall"), name="Core-Z5")


def upload(client, url, organisation, name: str, content: bytes, callbacks):
    with callbacks(execute=True):
        return client.post(url, {"organisation": organisation.pk, "file": SimpleUploadedFile(name, content)})


def test_a_manager_previews_an_import_confirms_it_and_downloads_the_result(
    client, manager_a, org_a, core_z5, django_capture_on_commit_callbacks
):
    client.force_login(manager_a)
    assert client.get(UPLOAD_DEVICES).status_code == 200

    response = upload(
        client,
        UPLOAD_DEVICES,
        org_a,
        "inventaire.csv",
        (DATA / "inventaire-excel-fr.csv").read_bytes(),
        django_capture_on_commit_callbacks,
    )

    job = ImportJob.objects.get()
    assert response.status_code == 302 and response.url == reverse("admin:devices_device_import_job", args=[job.pk])
    preview = client.get(response.url)
    page = preview.content.decode()
    assert ImportJob.objects.get().status == "previewed"
    assert "Waiting for confirmation" in page
    assert "Fleets that will be created:" in page and "Gendarmerie Rennes" in page
    assert "Zebra TC58" in page  # the failed row and its reason
    assert not Device.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        confirmed = client.post(response.url)
    assert confirmed.status_code == 302
    assert ImportJob.objects.get().status == "done"
    assert set(Device.objects.values_list("serial", flat=True)) == {"CZ5-000101", "CZ5-000103"}
    assert bytes(ImportJob.objects.get().content) == b""  # the file is dropped once imported
    assert "What the import did" in client.get(response.url).content.decode()

    assert "inventaire.csv" in client.get(UPLOAD_DEVICES).content.decode()  # listed among recent imports
    result = client.get(reverse("admin:devices_device_import_result", args=[job.pk]))

    assert result["Content-Type"].startswith("text/csv")
    assert 'filename="inventaire-result.csv"' in result["Content-Disposition"]
    lines = result.content.decode("utf-8-sig").splitlines()
    assert lines[1:3] == [
        "2,CZ5-000101,created,",
        "3,CZ5-000102,failed,IMEI: 354678100001011 is not a valid IMEI: its last digit is not the Luhn check digit"
        " of the others.",
    ]

    # Confirming again imports nothing twice.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(response.url)
    assert Device.objects.count() == 2


def test_battery_replacements_are_imported_through_the_admin(
    client, manager_a, org_a, django_capture_on_commit_callbacks
):
    DeviceFactory(organisation=org_a, serial="CZ5-000101")
    client.force_login(manager_a)
    response = upload(
        client,
        UPLOAD_BATTERIES,
        org_a,
        "batteries.csv",
        (DATA / "remplacements-batteries-fr.csv").read_bytes(),
        django_capture_on_commit_callbacks,
    )
    with django_capture_on_commit_callbacks(execute=True):
        client.post(response.url)
    event = BatteryEvent.objects.get()
    assert (event.part_serial, event.recorded_by) == ("BAT-77001", manager_a)


def test_an_unreadable_file_is_reported_on_the_job_page(client, manager_a, org_a, django_capture_on_commit_callbacks):
    client.force_login(manager_a)
    response = upload(client, UPLOAD_DEVICES, org_a, "notes.csv", b"hello,world\n", django_capture_on_commit_callbacks)
    page = client.get(response.url).content.decode()
    assert "Unreadable file" in page and "No header line" in page
    assert "Confirm the import" not in page


def test_a_file_over_the_size_limit_or_of_another_type_is_refused_naming_the_field(client, manager_a, org_a, settings):
    settings.IMPORT_MAX_UPLOAD_BYTES = 100
    client.force_login(manager_a)
    too_big = client.post(
        UPLOAD_DEVICES, {"organisation": org_a.pk, "file": SimpleUploadedFile("big.csv", b"serial\n" + b"x\n" * 100)}
    )
    assert too_big.status_code == 400
    assert too_big.context["form"].errors["file"] == [
        "This file is 207\xa0bytes; the largest accepted is 100\xa0bytes."
    ]
    wrong_type = client.post(UPLOAD_DEVICES, {"organisation": org_a.pk, "file": SimpleUploadedFile("a.pdf", b"x")})
    assert wrong_type.context["form"].errors["file"] == ["Upload a .csv or .xlsx file."]
    assert not ImportJob.objects.exists()


def test_a_viewer_cannot_import(client, viewer_a):
    client.force_login(viewer_a)
    assert client.get(UPLOAD_DEVICES).status_code == 403
    assert "Import devices" not in client.get(reverse("admin:devices_device_changelist")).content.decode()


def test_the_changelist_offers_the_imports_to_a_manager(client, manager_a):
    client.force_login(manager_a)
    page = client.get(reverse("admin:devices_device_changelist")).content.decode()
    assert UPLOAD_DEVICES in page and UPLOAD_BATTERIES in page


def test_a_manager_cannot_import_into_nor_see_the_imports_of_another_organisation(
    client, manager_a, manager_b, org_a, org_b, core_z5, django_capture_on_commit_callbacks
):
    client.force_login(manager_a)
    response = upload(client, UPLOAD_DEVICES, org_a, "a.csv", b"serial\nA1\n", django_capture_on_commit_callbacks)
    job = ImportJob.objects.get()

    client.force_login(manager_b)
    refused = client.post(
        UPLOAD_DEVICES, {"organisation": org_a.pk, "file": SimpleUploadedFile("b.csv", b"serial\nB1\n")}
    )
    assert refused.status_code == 400 and "organisation" in refused.context["form"].errors
    assert "a.csv" not in client.get(UPLOAD_DEVICES).content.decode()  # not among B's recent imports
    assert client.get(response.url).status_code == 404
    assert client.post(response.url).status_code == 404
    assert client.get(reverse("admin:devices_device_import_result", args=[job.pk])).status_code == 404
    assert ImportJob.objects.get().status == "previewed"
    assert not Device.objects.exists()


def test_the_list_of_imports_shows_each_manager_their_organisations_imports_only(client, manager_a, manager_b, org_a):
    ImportJob.objects.create(organisation=org_a, kind="devices", filename="inventaire-a.csv", content=b"serial\n")
    changelist = reverse("admin:devices_importjob_changelist")
    client.force_login(manager_a)
    assert "inventaire-a.csv" in client.get(changelist).content.decode()
    client.force_login(manager_b)
    assert "inventaire-a.csv" not in client.get(changelist).content.decode()
