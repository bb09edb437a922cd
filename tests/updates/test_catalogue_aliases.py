"""Catalogue imports: aliases from endoflife.date files and CSV columns, strict CSV columns, label templates,
and the devices an import links (their reported model, their reported build)."""

from __future__ import annotations

import datetime as dt
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from devices.choices import ComplianceStatus
from devices.models import Device
from tests.factories import DeviceFactory, DeviceModelFactory, ManufacturerFactory, OrganisationFactory
from updates.catalogue import CSV_COLUMNS, CatalogueError, read_csv, read_endoflife, release_label
from updates.models import DeviceModel, ModelAlias

ENDOFLIFE = Path(__file__).resolve().parents[1] / "data" / "endoflife"
pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("import_catalogue", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_samsung_models_are_known_by_the_model_code_their_firmware_documents_name():
    run(str(ENDOFLIFE / "samsung-mobile.md"))

    xcover7 = DeviceModel.objects.get(manufacturer__slug="samsung", slug="galaxy-xcover7")
    assert set(xcover7.aliases.values_list("name", flat=True)) >= {"SM-G556B"}
    assert DeviceModel.objects.resolve("SM-G556B") == xcover7
    assert DeviceModel.objects.resolve("samsung SM-G556B") == xcover7
    assert DeviceModel.objects.resolve("SM-A576B").name == "Galaxy A57 5G"


def test_a_model_code_several_releases_link_to_names_none_of_them():
    text = (ENDOFLIFE / "samsung-mobile.md").read_text()
    catalogue = read_endoflife(text, source="samsung-mobile.md")
    shared = [m.name for m in catalogue.models if "SM-R770" in m.aliases]
    assert shared == []  # four releases link to doc.samsungmobile.com/SM-R770/...


def test_reimporting_a_file_adds_no_alias_twice():
    run(str(ENDOFLIFE / "samsung-mobile.md"))
    count = ModelAlias.objects.count()
    out = run(str(ENDOFLIFE / "samsung-mobile.md"))
    assert ModelAlias.objects.count() == count
    assert "0 aliases added" in out


@pytest.mark.parametrize("name", ["pixel.md", "fairphone.md"])
def test_every_release_of_a_device_file_is_known_by_its_cycle_and_its_label(name):
    run(str(ENDOFLIFE / name))
    text = (ENDOFLIFE / name).read_text()
    for model in read_endoflife(text, source=name).models:
        found = DeviceModel.objects.resolve(model.aliases[0])
        assert found is not None and found.name == model.name, model
        assert DeviceModel.objects.resolve(model.name) == found


def test_android_releases_are_named_from_the_product_label_template():
    text = (ENDOFLIFE / "android.md").read_text()
    # An "os" product lists no device models; the same file as a device product shows the names it gives.
    catalogue = read_endoflife(text.replace("category: os", "category: device", 1), manufacturer="Google")
    names = [model.name for model in catalogue.models]
    assert "15 'Vanilla Ice Cream'" in names
    assert "1.5 'Cupcake'" in names
    assert "15" not in names


def test_a_releases_own_label_wins_and_any_release_key_fills_a_template():
    template = "Pixel __RELEASE_CYCLE__ (__SUPPORTED_ANDROID_VERSIONS__)"
    assert release_label({"releaseCycle": "9", "supportedAndroidVersions": "14 - 21"}, template) == "Pixel 9 (14 - 21)"
    assert release_label({"releaseCycle": "9", "releaseLabel": "Pixel Nine"}, template) == "Pixel Nine"
    assert release_label({"releaseCycle": "13"}, "__RELEASE_CYCLE__ '__CODENAME__'") == "13 ''"
    assert release_label({"releaseCycle": "13"}, None) == "13"


def test_lineageos_is_skipped_as_a_product_without_device_models():
    out = run(str(ENDOFLIFE / "lineageos.md"))
    assert "not device models" in out
    assert not DeviceModel.objects.exists()


# --- CSV ---------------------------------------------------------------------------------------------
def test_a_csv_with_unknown_columns_fails_listing_them_and_the_expected_ones(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("manufacturer,model,security_suport_until,colour\nSonim,XP10,2030-01-01,red\n")

    with pytest.raises(CommandError) as error:
        run(str(path))

    message = str(error.value)
    assert "colour, security_suport_until" in message
    assert ", ".join(CSV_COLUMNS) in message
    assert "--ignore-unknown-columns" in message
    assert not DeviceModel.objects.exists()


def test_unknown_columns_are_left_out_when_asked(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("manufacturer,model,security_support_until,colour\nSonim,XP10,2030-01-01,red\n")

    out = run(str(path), "--ignore-unknown-columns")

    assert DeviceModel.objects.get(name="XP10").security_support_until == dt.date(2030, 1, 1)
    assert "colour ignored" in out


def test_the_command_exits_non_zero_on_unknown_columns(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "c.csv"
    path.write_text("manufacturer,model,colour\nSonim,XP10,red\n")
    done = subprocess.run(
        [sys.executable, "manage.py", "import_catalogue", str(path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert done.returncode != 0
    assert "unknown column(s) colour" in done.stderr


def test_csv_alias_columns_name_models_and_manufacturers():
    catalogue = read_csv(
        "manufacturer,model,aliases,manufacturer_aliases\n"
        "Zebra Technologies,TC21 Touch Computer,TC21; TC210K,Zebra\n"
        "Zebra Technologies,TC21 Touch Computer,TC21-HC,\n"
    )
    assert catalogue.models[0].aliases == ["TC21", "TC210K", "TC21-HC"]
    assert catalogue.models[0].manufacturer_aliases == ["Zebra"]


def test_an_imported_manufacturer_alias_sends_later_rows_to_the_same_manufacturer(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(
        "manufacturer,model,aliases,manufacturer_aliases\nZebra Technologies,TC21 Touch Computer,TC21,Zebra\n"
    )
    run(str(path))
    path.write_text("manufacturer,model\nZebra,TC26\n")
    run(str(path))

    assert set(DeviceModel.objects.values_list("manufacturer__name", flat=True)) == {"Zebra Technologies"}
    assert DeviceModel.objects.resolve("Zebra TC21").name == "TC21 Touch Computer"


def test_an_alias_that_names_another_model_of_the_manufacturer_is_left_out_and_said(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("manufacturer,model,aliases\nZebra,TC21,\nZebra,TC26,TC21\n")
    out = StringIO()
    call_command("import_catalogue", str(path), stdout=out, stderr=StringIO())
    assert "'TC21' left out" in out.getvalue()
    assert DeviceModel.objects.resolve("TC21").name == "TC21"


def test_reading_rejects_unknown_columns_without_the_option():
    with pytest.raises(CatalogueError, match="unknown column"):
        read_csv("manufacturer,model,extra\nA,B,C\n")
    assert read_csv("manufacturer,model,extra\nA,B,C\n", ignore_unknown_columns=True).models[0].name == "B"


# --- Devices the import links ------------------------------------------------------------------------
def test_a_device_enrolled_with_an_unknown_model_gets_it_from_a_later_import(django_capture_on_commit_callbacks):
    organisation = OrganisationFactory()
    device = DeviceFactory(
        organisation=organisation,
        model=None,
        reported_model="samsung SM-G556B",
        security_patch_level=timezone.now().date() - dt.timedelta(days=20),
        last_check_in_at=timezone.now(),
    )
    with django_capture_on_commit_callbacks(execute=True):
        run(str(ENDOFLIFE / "samsung-mobile.md"))

    device.refresh_from_db()
    assert device.model.name == "Galaxy XCover7"


def test_import_catalogue_links_devices_that_reported_a_build_it_adds(tmp_path, django_capture_on_commit_callbacks):
    model = DeviceModelFactory(manufacturer=ManufacturerFactory(name="Sonim", slug="sonim"), name="XP10", slug="xp10")
    now = timezone.now()
    devices = DeviceFactory.create_batch(
        2,
        model=model,
        reported_build_number="XP10-B42",
        security_patch_level=now.date() - dt.timedelta(days=20),
        last_check_in_at=now,
    )
    from devices.compliance.engine import recompute

    recompute(device_ids=[d.pk for d in devices])
    assert not Device.objects.filter(current_build__isnull=False).exists()
    released = (now - dt.timedelta(days=20)).date().isoformat()
    path = tmp_path / "c.csv"
    path.write_text(
        f"manufacturer,model,build_number,security_patch_level,released_at\nSonim,XP10,XP10-B42,{released},{released}\n"
    )
    with django_capture_on_commit_callbacks(execute=True):
        run(str(path))

    for device in devices:
        device.refresh_from_db()
        assert device.current_build.build_number == "XP10-B42"
        assert device.compliance_status == ComplianceStatus.UP_TO_DATE
