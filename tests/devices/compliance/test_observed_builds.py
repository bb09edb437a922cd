"""Observed builds: recorded from check-ins of builds the catalogue lacks, measured against, promoted, revoked."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from devices.checkins.ingest import Submission, checkins_ingest
from devices.checkins.parsers import DeviceIdentity, Report
from devices.compliance.engine import recompute
from devices.compliance.observed import observed_builds_count
from devices.compliance.sweeps import sweep_range_run, sweep_start
from devices.models import Device, ObservedBuild
from fleet.choices import Role
from fleet.services import membership_sync_groups
from tests.api_personas import *  # noqa: F403 - the API personas (mdm_a, reader_a, reporter_a, org_a...)
from tests.devices.checkins.test_parsers import amapi_device
from tests.factories import (
    CompliancePolicyFactory,
    DeviceFactory,
    DeviceModelFactory,
    MembershipFactory,
    ObservedBuildFactory,
    OrganisationFactory,
    OSBuildFactory,
    UserFactory,
)
from updates.models import OSBuild

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


@pytest.fixture
def model():
    """An in-house line: a model the catalogue has no build for."""
    return DeviceModelFactory(manufacturer__name="Ministry", manufacturer__slug="ministry", name="Rugged 1")


def report(build: str, at: dt.datetime, patch_days: int | None = 20, version: str = "14") -> Report:
    level = None if patch_days is None else (NOW - days(patch_days)).date()
    return Report(reported_at=at, build_number=build, android_version=version, security_patch_level=level)


def check_in(org, devices_and_reports, *, now=NOW):
    return checkins_ingest(
        organisation_id=org.pk,
        submissions=[Submission(DeviceIdentity(serial=d.serial), r) for d, r in devices_and_reports],
        can_enrol=False,
        now=now,
    )


def fleet_on(org, model, build: str, count: int, *, at: dt.datetime, patch_days: int = 20, prefix: str = "D"):
    devices = [DeviceFactory(organisation=org, model=model, serial=f"{prefix}-{build}-{i}") for i in range(count)]
    check_in(org, [(d, report(build, at, patch_days)) for d in devices])
    return devices


def status(device: Device) -> str:
    device.refresh_from_db()
    return device.compliance_status


# --- Recording ---------------------------------------------------------------------------------------


def test_a_native_report_of_a_build_the_catalogue_lacks_is_recorded_once_and_widened(model):
    org = OrganisationFactory()
    device, other = (DeviceFactory(organisation=org, model=model, serial=s) for s in ("N-1", "N-2"))

    check_in(
        org, [(device, report("RUG.100", NOW - days(3), patch_days=40)), (other, report("RUG.100", NOW - days(2)))]
    )
    check_in(org, [(device, report("RUG.100", NOW - days(1), patch_days=None, version=""))])

    observed = ObservedBuild.objects.get()
    assert (observed.organisation, observed.model, observed.build_number) == (org, model, "RUG.100")
    assert observed.first_seen_at == NOW - days(3)
    assert observed.last_seen_at == NOW - days(1)
    # The newest report that gave them: a report without patch level or version keeps the known ones.
    assert observed.security_patch_level == (NOW - days(20)).date()
    assert observed.android_version == "14"
    assert observed.state == "observed"


def test_a_build_the_catalogue_has_is_not_recorded_and_an_unknown_model_records_nothing(model):
    org = OrganisationFactory()
    OSBuildFactory(model=model, build_number="RUG.KNOWN")
    known, nameless = DeviceFactory(organisation=org, model=model), DeviceFactory(organisation=org, model=None)

    check_in(org, [(known, report("RUG.KNOWN", NOW - days(1))), (nameless, report("WHO.KNOWS", NOW - days(1)))])

    assert not ObservedBuild.objects.exists()


def test_an_amapi_device_resource_records_its_build(reporter_a, org_a):
    model = DeviceModelFactory(manufacturer__name="Samsung", manufacturer__slug="samsung", name="SM-G556B")
    DeviceFactory(organisation=org_a, model=model, serial="R58N12ABCDE", imei=None)

    response = reporter_a.post("/api/v1/ingest/amapi/", amapi_device(), format="json")

    assert response.status_code == 201, response.content
    observed = ObservedBuild.objects.get(organisation=org_a)
    assert observed.build_number == "UP1A.231005.007.G556BXXS4BXB1"
    assert observed.security_patch_level == dt.date(2024, 2, 1)
    assert observed.android_version == "14"


def test_a_headwind_report_names_no_build_and_records_none(reporter_a, org_a, phone_model):
    DeviceFactory(organisation=org_a, model=phone_model, serial="HW-1")
    body = {"deviceId": "h0042", "serial": "HW-1", "model": "Core-Z5", "androidVersion": "13", "batteryLevel": 64}

    response = reporter_a.post("/api/v1/ingest/headwind/", body, format="json")

    assert response.status_code == 201, response.content
    assert not ObservedBuild.objects.exists()


def test_recording_adds_one_statement_per_batch_whatever_its_size(model, django_assert_max_num_queries):
    org = OrganisationFactory()
    small = [DeviceFactory(organisation=org, model=model, serial=f"S{i}") for i in range(10)]
    large = [DeviceFactory(organisation=org, model=model, serial=f"L{i}") for i in range(500)]

    with django_assert_max_num_queries(13) as small_queries:
        check_in(org, [(d, report(f"RUG.{i % 3}", NOW - days(1))) for i, d in enumerate(small)])
    with django_assert_max_num_queries(len(small_queries)):
        check_in(org, [(d, report(f"RUG.{i % 50}", NOW - days(1))) for i, d in enumerate(large)])

    assert ObservedBuild.objects.count() == 50


# --- Targets -----------------------------------------------------------------------------------------


def test_the_newest_build_enough_devices_run_becomes_the_target_from_its_first_sighting(model):
    org = OrganisationFactory()
    [laggard] = fleet_on(org, model, "RUG.OLD", 1, at=NOW - days(1), patch_days=80)
    fleet_on(org, model, "RUG.NEW", 2, at=NOW - days(20), patch_days=25)
    observed_builds_count()
    recompute(now=NOW)
    assert status(laggard) == "up_to_date"  # two devices are not enough (the default is 3)

    fleet_on(org, model, "RUG.NEW", 1, at=NOW - days(20), patch_days=25, prefix="E")
    observed_builds_count()
    recompute(now=NOW)
    # First seen 20 days ago, past the 14 days of grace.
    assert status(laggard) == "behind"
    assert laggard.builds_behind == 1
    assert laggard.behind_since == (NOW - days(20) + days(14)).date()
    assert laggard.latest_build_id is None  # the target is not a catalogue build


def test_a_device_on_the_target_or_a_newer_observed_build_is_up_to_date(model):
    org = OrganisationFactory()
    on_target = fleet_on(org, model, "RUG.NEW", 3, at=NOW - days(20), patch_days=25)
    [ahead] = fleet_on(org, model, "RUG.BETA", 1, at=NOW - days(2), patch_days=5)
    observed_builds_count()
    recompute(now=NOW)
    assert {status(d) for d in [*on_target, ahead]} == {"up_to_date"}


def test_one_organisations_devices_never_make_a_target_for_another(model):
    alpha, bravo = OrganisationFactory(), OrganisationFactory()
    fleet_on(alpha, model, "RUG.NEW", 5, at=NOW - days(20), patch_days=25, prefix="A")
    [bravo_device] = fleet_on(bravo, model, "RUG.OLD", 1, at=NOW - days(1), patch_days=80, prefix="B")
    observed_builds_count()
    recompute(now=NOW)

    assert status(bravo_device) == "up_to_date"
    assert not ObservedBuild.objects.filter(organisation=bravo, build_number="RUG.NEW").exists()


def test_the_policy_switches_observed_targets_off_or_raises_the_threshold(model):
    org = OrganisationFactory()
    [laggard] = fleet_on(org, model, "RUG.OLD", 1, at=NOW - days(1), patch_days=80)
    fleet_on(org, model, "RUG.NEW", 3, at=NOW - days(20), patch_days=25)
    observed_builds_count()
    policy = CompliancePolicyFactory(organisation=org, use_observed_builds=False)
    recompute(now=NOW)
    assert status(laggard) == "up_to_date"

    policy.use_observed_builds = True
    policy.observed_build_min_devices = 4
    policy.save()
    recompute(now=NOW)
    assert status(laggard) == "up_to_date"

    policy.observed_build_min_devices = 3
    policy.save()
    recompute(now=NOW)
    assert status(laggard) == "behind"


def test_a_model_with_a_catalogue_build_is_measured_against_the_catalogue_not_the_observed_builds(model):
    org = OrganisationFactory()
    OSBuildFactory(model=model, build_number="RUG.CAT", released_at=NOW - days(60), security_patch_level=NOW.date())
    [device] = fleet_on(org, model, "RUG.NEW", 3, at=NOW - days(20), patch_days=25)[:1]
    observed_builds_count()
    recompute(now=NOW)
    # Judged by patch level against the catalogue's target, which is newer.
    assert status(device) == "behind"


def test_a_revoked_observed_build_is_never_a_target(model):
    org = OrganisationFactory()
    [laggard] = fleet_on(org, model, "RUG.OLD", 1, at=NOW - days(1), patch_days=80)
    fleet_on(org, model, "RUG.NEW", 3, at=NOW - days(20), patch_days=25)
    observed_builds_count()
    ObservedBuild.objects.filter(build_number="RUG.NEW").update(state="revoked", changed_at=NOW)
    recompute(now=NOW)
    assert status(laggard) == "up_to_date"


def test_the_sweep_counts_the_devices_then_measures_against_them(model):
    org = OrganisationFactory()
    [laggard] = fleet_on(org, model, "RUG.OLD", 1, at=NOW - days(1), patch_days=80)
    fleet_on(org, model, "RUG.NEW", 3, at=NOW - days(20), patch_days=25)
    assert ObservedBuild.objects.get(build_number="RUG.NEW").device_count == 0  # the ingest does not count

    run = sweep_start(task_id=None, range_size=1000)
    for lo, hi in run.ranges.values_list("lo", "hi"):
        sweep_range_run(run_id=run.pk, lo=lo, hi=hi)

    assert ObservedBuild.objects.get(build_number="RUG.NEW").device_count == 3
    assert status(laggard) == "behind"


# --- Promotion and revocation --------------------------------------------------------------------------


def test_promoting_through_the_api_creates_the_organisations_private_build_and_links_its_devices(
    mdm_a, org_a, django_capture_on_commit_callbacks
):
    model = DeviceModelFactory()
    devices = fleet_on(org_a, model, "RUG.NEW", 2, at=NOW - days(20), patch_days=25)
    observed = ObservedBuild.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        response = mdm_a.post(f"/api/v1/observed-builds/{observed.pk}/promote/")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "promoted"
    build = OSBuild.objects.get(build_number="RUG.NEW")
    assert (build.organisation, build.model, build.released_at) == (org_a, model, NOW - days(20))
    assert build.security_patch_level == (NOW - days(25)).date()
    assert response.json()["promoted_build"]["id"] == build.pk
    assert {Device.objects.get(pk=d.pk).current_build_id for d in devices} == {build.pk}
    # Twice is a 400 naming the state, never a second build.
    again = mdm_a.post(f"/api/v1/observed-builds/{observed.pk}/promote/")
    assert again.status_code == 400 and "state" in again.json()
    assert OSBuild.objects.filter(build_number="RUG.NEW").count() == 1


def test_a_build_without_patch_level_cannot_be_promoted(mdm_a, org_a):
    observed = ObservedBuildFactory(organisation=org_a, security_patch_level=None)
    response = mdm_a.post(f"/api/v1/observed-builds/{observed.pk}/promote/")
    assert response.status_code == 400
    assert "security_patch_level" in response.json()


def test_revoking_through_the_api_and_listing_by_state(mdm_a, reader_a, org_a, org_b):
    observed = ObservedBuildFactory(organisation=org_a)
    ObservedBuildFactory(organisation=org_b)

    response = mdm_a.post(f"/api/v1/observed-builds/{observed.pk}/revoke/")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "revoked"
    listed = reader_a.get("/api/v1/observed-builds/", {"state": "revoked"}).json()
    assert [row["id"] for row in listed["results"]] == [observed.pk]
    assert reader_a.get("/api/v1/observed-builds/", {"state": "observed"}).json()["results"] == []
    assert reader_a.post(f"/api/v1/observed-builds/{observed.pk}/revoke/").status_code == 403


@pytest.fixture
def manager(org_a):
    user = UserFactory(username="alpha-manager")
    MembershipFactory(user=user, organisation=org_a, role=Role.MANAGER)
    membership_sync_groups(user=user)
    client = Client()
    client.force_login(user)
    return client


def _act(client, action, observed, confirm):
    data = {"action": action, ACTION_CHECKBOX_NAME: [observed.pk]}
    if confirm:
        data["confirm"] = "yes"
    return client.post(reverse("admin:devices_observedbuild_changelist"), data)


def test_the_admin_promote_action_shows_what_it_creates_then_creates_it(manager, org_a):
    model = DeviceModelFactory()
    fleet_on(org_a, model, "RUG.NEW", 2, at=NOW - days(20), patch_days=25)
    observed = ObservedBuild.objects.get()

    shown = _act(manager, "promote_selected", observed, confirm=False)
    assert shown.status_code == 200
    assert "its 2 devices are linked to it" in shown.content.decode()
    assert not OSBuild.objects.exists()

    done = _act(manager, "promote_selected", observed, confirm=True)
    assert done.status_code == 302
    observed.refresh_from_db()
    assert observed.state == "promoted" and observed.promoted_build.organisation == org_a


def test_the_admin_revoke_action_shows_the_devices_concerned_then_revokes(manager, org_a):
    model = DeviceModelFactory()
    fleet_on(org_a, model, "RUG.NEW", 3, at=NOW - days(20), patch_days=25)
    observed = ObservedBuild.objects.get()

    shown = _act(manager, "revoke_selected", observed, confirm=False)
    assert "its 3 devices are judged by their patch level alone" in shown.content.decode()
    _act(manager, "revoke_selected", observed, confirm=True)
    observed.refresh_from_db()
    assert observed.state == "revoked" and observed.changed_at is not None
    assert manager.get(reverse("admin:devices_observedbuild_changelist")).status_code == 200
