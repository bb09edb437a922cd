"""Models as MDMs name them: model codes and manufacturer aliases in check-ins (native, AMAPI, Headwind) and
enrolment; an unknown model kept with the name it gave, suggested, and linked once the catalogue learns it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from devices.checkins.ingest import Submission, checkins_ingest
from devices.checkins.parsers import DeviceIdentity, Report
from devices.models import Device
from tests.api_personas import *  # noqa: F403
from tests.devices.checkins.test_parsers import amapi_device
from tests.factories import DeviceFactory, DeviceModelFactory, ManufacturerFactory, OrganisationFactory
from updates.models import DeviceModel
from updates.services import manufacturer_alias_add, model_alias_add

ENDOFLIFE = Path(__file__).resolve().parents[2] / "data" / "endoflife"
NOW = timezone.now().replace(microsecond=0)
pytestmark = pytest.mark.django_db


@pytest.fixture
def samsung_catalogue():
    call_command("import_catalogue", str(ENDOFLIFE / "samsung-mobile.md"), stdout=None)
    return DeviceModel.objects.get(manufacturer__slug="samsung", slug="galaxy-xcover7")


@pytest.fixture
def tc21():
    zebra = ManufacturerFactory(name="Zebra Technologies", slug="zebra-technologies")
    manufacturer_alias_add(manufacturer=zebra, name="Zebra")
    return DeviceModelFactory(manufacturer=zebra, name="TC21", slug="tc21")


def native(serial: str, **fields) -> dict:
    return {
        "serial": serial,
        "reported_at": (NOW - dt.timedelta(hours=1)).isoformat(),
        "build_number": "UP1A.231005.007.G556BXXS4BXB1",
        "android_version": "14",
        "security_patch_level": (NOW.date() - dt.timedelta(days=20)).isoformat(),
        **fields,
    }


def amapi(serial: str, **hardware) -> dict:
    device = amapi_device()
    device["hardwareInfo"].update(serialNumber=serial, **hardware)
    device["networkInfo"] = {}
    device["lastStatusReportTime"] = (NOW - dt.timedelta(minutes=5)).isoformat()
    return device


def test_an_amapi_device_is_enrolled_with_the_model_its_code_names(mdm_a, org_a, samsung_catalogue):
    response = mdm_a.post("/api/v1/ingest/amapi/", amapi("R58N1"), format="json")

    assert response.status_code == 201, response.json()
    device = Device.objects.get(organisation=org_a, serial="R58N1")
    assert device.model == samsung_catalogue
    assert device.reported_model == "samsung SM-G556B"
    assert response.json()["warnings"] is None


def test_a_headwind_model_code_names_the_model(mdm_a, org_a, samsung_catalogue):
    report = {"serial": "HW-1", "model": "SM-G556B", "androidVersion": "14", "batteryLevel": 60}
    response = mdm_a.post("/api/v1/ingest/headwind/", report, format="json")

    assert response.status_code == 201, response.json()
    assert Device.objects.get(organisation=org_a, serial="HW-1").model == samsung_catalogue


def test_a_manufacturer_alias_in_a_native_check_in_and_in_amapi_hardware_info(mdm_a, org_a, tc21):
    first = mdm_a.post("/api/v1/checkins/", native("Z-1", model="Zebra TC21"), format="json")
    second = mdm_a.post(
        "/api/v1/ingest/amapi/",
        amapi("Z-2", brand="Zebra", manufacturer="Zebra Technologies", model="TC21"),
        format="json",
    )

    assert (first.status_code, second.status_code) == (201, 201)
    assert set(Device.objects.filter(organisation=org_a).values_list("model", flat=True)) == {tc21.pk}


def test_an_unknown_model_is_kept_with_its_name_and_answered_with_suggestions(mdm_a, org_a, tc21):
    response = mdm_a.post("/api/v1/checkins/", native("Z-9", model="Zebra TC22"), format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["enrolled"] is True
    # Judged by its patch level while its model is unknown (docs/compliance.md, precedence).
    assert body["compliance_status"] == "up_to_date"
    (message,) = body["warnings"]["model"]
    assert '"Zebra TC22"' in message
    assert "Did you mean Zebra Technologies TC21?" in message
    device = Device.objects.get(organisation=org_a, serial="Z-9")
    assert (device.model, device.reported_model) == (None, "Zebra TC22")


def test_a_device_enrolled_with_an_unknown_model_gets_it_from_a_later_catalogue_import(
    mdm_a, org_a, django_capture_on_commit_callbacks
):
    mdm_a.post("/api/v1/ingest/amapi/", amapi("R58N2"), format="json")
    device = Device.objects.get(organisation=org_a, serial="R58N2")
    assert device.model is None and device.reported_model

    with django_capture_on_commit_callbacks(execute=True):
        call_command("import_catalogue", str(ENDOFLIFE / "samsung-mobile.md"), stdout=None)

    device.refresh_from_db()
    assert device.model.name == "Galaxy XCover7"


def test_a_new_alias_links_the_devices_that_reported_it_and_re_evaluates_them(
    org_a, django_capture_on_commit_callbacks
):
    from devices.compliance.engine import recompute
    from tests.factories import OSBuildFactory

    model = DeviceModelFactory(manufacturer=ManufacturerFactory(name="Crosscall", slug="crosscall"), name="Core-Z5")
    build = OSBuildFactory(
        model=model,
        build_number="CZ5.B1",
        security_patch_level=NOW.date() - dt.timedelta(days=10),
        released_at=NOW - dt.timedelta(days=10),
    )
    reported = {
        "model": None,
        "reported_build_number": "CZ5.B1",
        "security_patch_level": NOW.date() - dt.timedelta(days=10),
        "last_check_in_at": NOW - dt.timedelta(hours=1),
    }
    waiting = [
        DeviceFactory(organisation=org_a, reported_model="CZ5-ABC", **reported),
        DeviceFactory(organisation=OrganisationFactory(), reported_model="cz5 abc", **reported),
    ]
    unrelated = DeviceFactory(organisation=org_a, reported_model="Something else", **reported)
    recompute()
    assert not Device.objects.filter(model__isnull=False).exists()

    with django_capture_on_commit_callbacks(execute=True):
        model_alias_add(model=model, name="CZ5-ABC")

    for device in waiting:
        device.refresh_from_db()
        assert (device.model, device.current_build, device.compliance_status) == (model, build, "up_to_date")
    unrelated.refresh_from_db()
    assert unrelated.model is None  # judged by its patch level meanwhile, as before the alias


def test_a_later_report_naming_a_known_model_sets_it_and_its_build(mdm_a, org_a, samsung_catalogue):
    from tests.factories import OSBuildFactory

    build = OSBuildFactory(model=samsung_catalogue, build_number="UP1A.231005.007.G556BXXS4BXB1")
    device = DeviceFactory(organisation=org_a, serial="LATE-1", model=None, reported_model="")
    response = mdm_a.post("/api/v1/checkins/", native("LATE-1", model="SM-G556B"), format="json")

    assert response.status_code == 201, response.json()
    device.refresh_from_db()
    assert (device.model, device.current_build, device.reported_model) == (samsung_catalogue, build, "SM-G556B")


def test_a_later_report_never_changes_a_model_already_set(mdm_a, org_a, samsung_catalogue, tc21):
    device = DeviceFactory(organisation=org_a, serial="KEEP-1", model=tc21)
    mdm_a.post("/api/v1/checkins/", native("KEEP-1", model="SM-G556B"), format="json")
    device.refresh_from_db()
    assert (device.model, device.reported_model) == (tc21, "SM-G556B")


def test_a_batch_of_unknown_models_costs_the_same_statements_whatever_its_size(tc21, django_assert_max_num_queries):
    org = OrganisationFactory()

    def batch(prefix: str, size: int) -> list[Submission]:
        at = NOW - dt.timedelta(hours=1)
        return [
            Submission(
                DeviceIdentity(serial=f"{prefix}{i}", model_names=(f"Zebra TC2{i % 7}", f"TC2{i % 7}")),
                Report(reported_at=at, build_number="B1", security_patch_level=NOW.date() - dt.timedelta(days=9)),
            )
            for i in range(size)
        ]

    with django_assert_max_num_queries(16) as small:
        checkins_ingest(organisation_id=org.pk, submissions=batch("S", 10), can_enrol=True, now=NOW)
    with django_assert_max_num_queries(len(small)):
        results = checkins_ingest(organisation_id=org.pk, submissions=batch("L", 1000), can_enrol=True, now=NOW)
    assert sum(1 for r in results if r.warnings) == 1000 - len([i for i in range(1000) if i % 7 == 1])
    # Devices enrolled without a model, reporting again: the names are read once for the whole batch.
    with django_assert_max_num_queries(len(small)):
        checkins_ingest(organisation_id=org.pk, submissions=batch("L", 1000), can_enrol=False, now=NOW)
