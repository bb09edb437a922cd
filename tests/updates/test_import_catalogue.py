"""`import_catalogue`: real endoflife.date product files and our CSV format."""

from __future__ import annotations

import datetime as dt
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.factories import DeviceFactory, OrganisationFactory
from updates.catalogue import ENDED, read_csv, read_endoflife
from updates.models import DeviceModel, OSBuild

# A byte-for-byte copy of ../shared/data/endoflife (MIT, see SOURCE.txt there), so the suite also runs
# from a clone that has no shared/ folder beside it.
ENDOFLIFE = Path(__file__).resolve().parents[1] / "data" / "endoflife"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "endoflife"
pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("import_catalogue", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def endoflife_dir() -> Path:
    return ENDOFLIFE


def test_the_copied_endoflife_files_are_the_shared_ones():
    if not SHARED.is_dir():
        pytest.skip(f"no shared data folder at {SHARED} to compare with")
    for shared in SHARED.iterdir():
        assert (ENDOFLIFE / shared.name).read_bytes() == shared.read_bytes(), shared.name


def test_the_real_endoflife_files_import_every_device_model_and_skip_os_products(endoflife_dir):
    output = run(*(str(p) for p in sorted(endoflife_dir.glob("*.md"))))
    assert "pixel.md: models 39 created" in output
    assert "fairphone.md: models 7 created" in output
    assert "samsung-mobile.md: models 437 created" in output
    assert "'Android OS' is a product of category 'os'" in output
    assert DeviceModel.objects.filter(manufacturer__name="Google").count() == 39


def test_endoflife_dates_booleans_and_comments_are_read(endoflife_dir):
    run(str(endoflife_dir / "fairphone.md"), str(endoflife_dir / "pixel.md"))
    fp5 = DeviceModel.objects.get(manufacturer__name="Fairphone", name="Fairphone 5")
    # eol: 2031-09-14 # according to https://...   (a comment after the value)
    assert fp5.security_support_until == dt.date(2031, 9, 14)
    assert fp5.launched_on == dt.date(2023, 9, 14)
    assert fp5.os_support_until is None  # eoas: false = no end announced
    # "3" and "3+" are two models, not one updated twice.
    assert {"Fairphone 3", "Fairphone 3+"} <= set(DeviceModel.objects.values_list("name", flat=True))


def test_eol_true_means_ended_so_the_model_is_unsupported_from_today(endoflife_dir):
    entries = read_endoflife((endoflife_dir / "samsung-mobile.md").read_text(), source="samsung-mobile.md")
    ended = [m for m in entries.models if m.security_support_until == ENDED]
    assert ended, "samsung-mobile.md has models with eol: true"
    run(str(endoflife_dir / "samsung-mobile.md"))
    model = DeviceModel.objects.get(manufacturer__name="Samsung", slug=ended[0].slug)
    assert model.security_support_until < dt.date.today()


def test_reimporting_the_same_files_changes_nothing(endoflife_dir):
    files = [str(p) for p in sorted(endoflife_dir.glob("*.md"))]
    run(*files)
    before = list(DeviceModel.objects.order_by("pk").values())
    output = run(*files)
    assert "samsung-mobile.md: models 0 created, 0 updated, 437 unchanged" in output
    assert list(DeviceModel.objects.order_by("pk").values()) == before


def test_csv_creates_models_and_builds_and_reports_bad_rows_without_losing_good_ones(tmp_path):
    path = tmp_path / "catalogue.csv"
    path.write_text(
        "manufacturer,model,launched_on,security_support_until,os_support_until,build_number,android_version,"
        "security_patch_level,released_at,channel,revoked\n"
        "Crosscall,Core-Z5,2023-03-01,2029-03-01,2027-03-01,CZ5.1,14,2024-01-05,2024-01-10,stable,\n"
        "Crosscall,Core-Z5,,,,CZ5.2,14,2024-02-05,2024-02-10T08:00:00Z,stable,\n"
        "Crosscall,Core-Z5,,,,CZ5.3,14,not-a-date,2024-03-10,stable,\n"
        "\n"
        "Zebra,TC58,2022-01-01,2030-01-01,,TC58.9,13,2024-01-01,2024-01-03,beta,yes\n"
    )
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("import_catalogue", str(path), stdout=StringIO(), stderr=err)
    assert "line 4: security_patch_level is not a date" in err.getvalue()
    assert set(OSBuild.objects.values_list("build_number", flat=True)) == {"CZ5.1", "CZ5.2", "TC58.9"}
    core = DeviceModel.objects.get(name="Core-Z5")
    assert core.security_support_until == dt.date(2029, 3, 1)
    tc58 = OSBuild.objects.get(build_number="TC58.9")
    assert (tc58.channel, tc58.is_revoked) == ("beta", True)


def test_csv_in_french_excel_style_with_semicolons_and_a_bom():
    entries = read_csv("\ufeffmanufacturer;model;security_support_until\nSonim;XP10;2027-06-30\n".lstrip("\ufeff"))
    assert [(m.manufacturer, m.name, m.security_support_until) for m in entries.models] == [
        ("Sonim", "XP10", dt.date(2027, 6, 30))
    ]


def test_private_builds_for_an_organisation(tmp_path):
    organisation = OrganisationFactory(slug="ministere")
    path = tmp_path / "inhouse.csv"
    path.write_text(
        "manufacturer,model,build_number,security_patch_level,released_at\nCrosscall,Core-Z5,MIN-1,2024-01-05,2024-01-20\n"
    )
    run(str(path), "--organisation", "ministere")
    assert OSBuild.objects.get(build_number="MIN-1").organisation == organisation


def test_moving_a_support_date_by_import_flags_the_devices(tmp_path, django_capture_on_commit_callbacks):
    path = tmp_path / "c.csv"
    path.write_text("manufacturer,model,launched_on,security_support_until\nSonim,XP10,2020-01-01,2030-01-01\n")
    run(str(path))
    model = DeviceModel.objects.get(name="XP10")
    device = DeviceFactory(model=model)
    path.write_text("manufacturer,model,launched_on,security_support_until\nSonim,XP10,2020-01-01,2021-01-01\n")
    from django.utils import timezone

    device.last_check_in_at = timezone.now()
    device.save(update_fields=["last_check_in_at"])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run(str(path))
    assert len(callbacks) == 1
    device.refresh_from_db()
    assert device.compliance_status == "unsupported"


def test_a_missing_file_or_organisation_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run(str(tmp_path / "missing.csv"))
    path = tmp_path / "c.csv"
    path.write_text("manufacturer,model\nA,B\n")
    with pytest.raises(CommandError, match="No organisation"):
        run(str(path), "--organisation", "nope")


def test_flag_devices_prints_what_changed():
    DeviceFactory.create_batch(3, last_check_in_at=None)
    from devices.models import Device

    Device.objects.update(compliance_status="up_to_date")
    out = StringIO()
    call_command("flag_devices", stdout=out)
    assert "3 devices updated, 3 changed status" in out.getvalue()
    assert "now Unknown: 3" in out.getvalue()


def test_flag_devices_reports_models_reaching_end_of_support_per_organisation():
    from tests.factories import CompliancePolicyFactory, DeviceModelFactory

    organisation = OrganisationFactory(name="Ministère")
    CompliancePolicyFactory(organisation=organisation, eos_warning_days=90)
    today = dt.date.today()
    soon = DeviceModelFactory(name="XCover5", security_support_until=today + dt.timedelta(days=60))
    later = DeviceModelFactory(name="XCover7", security_support_until=today + dt.timedelta(days=120))
    DeviceFactory.create_batch(2, organisation=organisation, model=soon)
    DeviceFactory(organisation=organisation, model=later)
    out = StringIO()
    call_command("flag_devices", stdout=out)
    assert "Ministère: models reaching end of support:" in out.getvalue()
    assert f"XCover5: ends {soon.security_support_until.isoformat()}, 2 devices" in out.getvalue()
    assert "XCover7" not in out.getvalue()  # outside this organisation's 90-day window
