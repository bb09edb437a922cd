"""Compliance read-outs: counts per organisation and fleet, and time-to-patch per build."""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import CheckInFactory, DeviceFactory, FleetFactory, OSBuildFactory


def test_the_summary_counts_by_status_battery_and_waiver_per_organisation_and_fleet(mdm_a, org_a, fleet_a, device_b):
    DeviceFactory(organisation=org_a, fleet=fleet_a, compliance_status="behind", battery_status="due", is_waived=True)
    DeviceFactory(organisation=org_a, fleet=fleet_a, compliance_status="behind", battery_status="ok")
    DeviceFactory(organisation=org_a, fleet=None, compliance_status="critical", battery_status="ok")
    DeviceFactory(organisation=org_a, fleet=fleet_a, compliance_status="critical", retired_at=timezone.now())
    empty = FleetFactory(organisation=org_a, name="Zulu", slug="zulu")

    body = mdm_a.get("/api/v1/compliance/summary/").json()

    organisation = body["organisation"]
    assert organisation["total"] == 3  # retired devices are not counted; B's device is not counted
    assert organisation["by_status"]["behind"] == 2
    assert organisation["by_status"]["critical"] == 1
    assert organisation["by_status"]["up_to_date"] == 0
    assert organisation["by_battery_status"] == {"ok": 2, "due": 1, "replace_now": 0, "unknown": 0}
    assert organisation["waived"] == 1
    fleets = {(f["fleet"] or {}).get("slug"): f for f in body["fleets"]}
    assert fleets["north"]["total"] == 2
    assert fleets["north"]["by_status"]["behind"] == 2
    assert fleets[None]["by_status"]["critical"] == 1
    assert fleets["zulu"]["total"] == 0
    assert fleets["zulu"]["fleet"]["id"] == empty.pk


def test_the_summary_of_b_ignores_a_entirely(mdm_b, org_a, fleet_a, device_a):
    DeviceFactory.create_batch(3, organisation=org_a, fleet=fleet_a)
    body = mdm_b.get("/api/v1/compliance/summary/").json()
    assert body["organisation"]["total"] == 0
    assert body["fleets"] == []


def test_the_summary_is_a_fixed_number_of_queries(mdm_a, org_a):
    def count() -> int:
        mdm_a.get("/api/v1/compliance/summary/")
        with CaptureQueriesContext(connection) as captured:
            mdm_a.get("/api/v1/compliance/summary/")
        return len(captured)

    fleets = FleetFactory.create_batch(2, organisation=org_a)
    DeviceFactory(organisation=org_a, fleet=fleets[0])
    few = count()
    for fleet in FleetFactory.create_batch(10, organisation=org_a):
        DeviceFactory.create_batch(2, organisation=org_a, fleet=fleet, compliance_status="behind")
    assert count() == few <= 3


def test_time_to_patch_per_build_counts_only_the_organisations_devices(mdm_a, org_a, org_b, phone_model):
    released = timezone.now() - dt.timedelta(days=20)
    build = OSBuildFactory(model=phone_model, build_number="B.2", released_at=released)
    foreign_private = OSBuildFactory(model=phone_model, build_number="SECRET", organisation=org_b)
    for days in (2, 4):
        device = DeviceFactory(organisation=org_a, model=phone_model)
        CheckInFactory(device=device, build=build, build_number="B.2", reported_at=released + dt.timedelta(days=days))
    other = DeviceFactory(organisation=org_b, model=phone_model)
    CheckInFactory(device=other, build=build, build_number="B.2", reported_at=released + dt.timedelta(days=15))

    for model in (phone_model.pk, phone_model.slug):
        response = mdm_a.get(f"/api/v1/compliance/time-to-patch/?model={model}")
        assert response.status_code == 200, response.content
        rows = {row["build"]["build_number"]: row for row in response.json()}
        assert foreign_private.build_number not in rows
        assert rows["B.2"]["installed_devices"] == 2
        assert round(rows["B.2"]["median_days"]) == 3


def test_time_to_patch_needs_a_known_model(mdm_a, phone_model):
    assert "model" in mdm_a.get("/api/v1/compliance/time-to-patch/").json()
    for value in ("nope", "9" * 40, "9" * 5000):
        response = mdm_a.get("/api/v1/compliance/time-to-patch/", {"model": value})
        assert response.status_code == 400
        assert "model" in response.json()
