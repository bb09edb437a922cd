"""The compliance dashboard on the admin index: right numbers, right links, one organisation at a time."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from devices.compliance.tallies import snapshot_statuses
from devices.dashboard import build_dashboard
from devices.models import ComplianceSnapshot, DeviceTally
from tests.factories import DeviceFactory, DeviceModelFactory, OrganisationFactory

pytestmark = pytest.mark.django_db


def fleet_of(organisation, **statuses: int) -> None:
    for status, count in statuses.items():
        DeviceFactory.create_batch(count, organisation=organisation, compliance_status=status)


def test_counts_by_status_match_a_fleet_of_known_composition(org_a):
    fleet_of(org_a, up_to_date=5, behind=3, critical=2)
    DeviceFactory(organisation=org_a, compliance_status="behind", retired_at=timezone.now())  # not counted
    fleet_of(OrganisationFactory(), behind=7)  # another organisation
    dashboard = build_dashboard(organisation=org_a, today=timezone.now().date())
    counts = {bar.label: bar.count for bar in dashboard.statuses}
    assert (dashboard.total, counts["Up to date"], counts["Behind"], counts["Critical"], counts["Silent"]) == (
        10,
        5,
        3,
        2,
        0,
    )


def test_patch_age_buckets_and_battery_counts(org_a):
    today = timezone.now().date()
    for age in (0, 30, 31, 90, 91, 400):
        DeviceFactory(organisation=org_a, security_patch_level=today - dt.timedelta(days=age), battery_status="due")
    DeviceFactory(organisation=org_a, security_patch_level=None, battery_status="replace_now")
    dashboard = build_dashboard(organisation=org_a, today=today)
    ages = {bar.label: bar.count for bar in dashboard.patch_ages}
    assert ages == {"0-30 days": 2, "31-60 days": 1, "61-90 days": 1, "91-180 days": 1, "180+ days": 1, "unknown": 1}
    batteries = {bar.label: bar.count for bar in dashboard.batteries}
    assert (batteries["Due"], batteries["Replace now"]) == (6, 1)


def test_every_number_links_to_the_matching_filtered_device_list(admin_client, org_a):
    fleet_of(org_a, behind=3, up_to_date=2)
    dashboard = build_dashboard(organisation=org_a, today=timezone.now().date())
    behind = next(bar for bar in dashboard.statuses if bar.label == "Behind")
    response = admin_client.get(behind.url)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 3


def test_patch_age_link_filters_the_device_list(admin_client, org_a):
    today = timezone.now().date()
    DeviceFactory(organisation=org_a, security_patch_level=today - dt.timedelta(days=200))
    DeviceFactory(organisation=org_a, security_patch_level=today - dt.timedelta(days=5))
    dashboard = build_dashboard(organisation=org_a, today=today)
    old = next(bar for bar in dashboard.patch_ages if bar.label.startswith("180+"))
    response = admin_client.get(old.url)
    assert [d.security_patch_level for d in response.context["cl"].result_list] == [today - dt.timedelta(days=200)]


def test_share_on_target_build_per_model(org_a):
    model = DeviceModelFactory(name="Core-Z5")
    from tests.factories import OSBuildFactory

    build = OSBuildFactory(model=model)
    DeviceFactory.create_batch(
        3, organisation=org_a, model=model, current_build=build, latest_build=build, compliance_status="up_to_date"
    )
    DeviceFactory(
        organisation=org_a,
        model=model,
        current_build=build,
        latest_build=build,
        builds_behind=2,
        compliance_status="behind",
    )
    row = build_dashboard(organisation=org_a, today=timezone.now().date()).models[0]
    assert (row["model__name"], row["devices"], row["on_target"], row["share"]) == ("Core-Z5", 4, 3, 0.75)


def test_models_reaching_end_of_support_with_device_counts(org_a):
    today = timezone.now().date()
    soon = DeviceModelFactory(name="XCover5", security_support_until=today + dt.timedelta(days=30))
    DeviceFactory.create_batch(2, organisation=org_a, model=soon)
    rows = build_dashboard(organisation=org_a, today=today).end_of_support
    assert [(str(r["model"].name), r["devices"], r["ended"]) for r in rows] == [("XCover5", 2, False)]


def test_the_dashboard_reads_the_sweeps_tallies_and_says_when_they_were_computed(org_a):
    from devices.compliance.tallies import tally_devices

    fleet_of(org_a, behind=2)
    tally_devices()
    fleet_of(org_a, behind=5)  # after the sweep: shown by the next one
    dashboard = build_dashboard(organisation=org_a, today=timezone.now().date())
    assert dashboard.total == 2 and dashboard.computed_at is not None
    tally_devices()
    assert build_dashboard(organisation=org_a, today=timezone.now().date()).total == 7


def test_an_organisation_not_tallied_yet_is_counted_on_the_fly_and_nothing_is_written(org_a):
    fleet_of(org_a, behind=2, critical=1)
    dashboard = build_dashboard(organisation=org_a, today=timezone.now().date())
    counts = {bar.label: bar.count for bar in dashboard.statuses}
    assert (dashboard.total, counts["Behind"], counts["Critical"]) == (3, 2, 1)
    assert not DeviceTally.objects.exists()  # a read: the sweep writes the tallies


def test_the_trend_reads_the_sweeps_daily_snapshots(org_a):
    today = timezone.now().date()
    fleet_of(org_a, behind=4, silent=1, up_to_date=9)
    snapshot_statuses(today=today - dt.timedelta(days=1))
    snapshot_statuses(today=today)
    snapshot_statuses(today=today)  # idempotent for the day
    assert ComplianceSnapshot.objects.filter(organisation=org_a, day=today).count() == 3
    dashboard = build_dashboard(organisation=org_a, today=today)
    assert dashboard.trend == [(today - dt.timedelta(days=1), 5), (today, 5)]
    assert dashboard.trend_svg_points.count(",") == 2


def test_the_admin_index_shows_the_dashboard_of_the_managers_organisation_only(client, manager_b, org_a, org_b):
    fleet_of(org_a, behind=3)
    fleet_of(org_b, critical=2)
    client.force_login(manager_b)
    page = client.get(reverse("admin:index")).content.decode()
    assert "Compliance of Company B" in page
    assert "Ministère A" not in page
    # Asking for A's dashboard by URL falls back to the user's own organisation.
    page = client.get(reverse("admin:index"), {"organisation": org_a.pk}).content.decode()
    assert "Compliance of Company B" in page and "Ministère A" not in page


def test_a_superuser_switches_organisation(admin_client, org_a, org_b):
    fleet_of(org_a, behind=3)
    page = admin_client.get(reverse("admin:index"), {"organisation": org_a.pk}).content.decode()
    assert "Compliance of Ministère A" in page
    assert re.search(rf'<option value="{org_b.pk}"[^>]*>Company B</option>', page)


def test_the_dashboard_is_a_fixed_number_of_queries(admin_client, org_a, django_assert_max_num_queries):
    fleet_of(org_a, behind=3)
    with django_assert_max_num_queries(30) as small:
        admin_client.get(reverse("admin:index"), {"organisation": org_a.pk})
    fleet_of(org_a, behind=60, critical=40)
    with django_assert_max_num_queries(len(small.captured_queries)):
        admin_client.get(reverse("admin:index"), {"organisation": org_a.pk})


def test_rollout_curves_of_the_latest_builds_from_the_check_ins(org_a):
    from devices.compliance.rollouts import rollouts_refresh
    from tests.factories import CheckInFactory, OSBuildFactory

    now = timezone.now()
    model = DeviceModelFactory(name="Core-Z5")
    build = OSBuildFactory(model=model, released_at=now - dt.timedelta(days=10), build_number="CZ5.9")
    devices = DeviceFactory.create_batch(4, organisation=org_a, model=model)
    for day, device in zip((1, 1, 3), devices, strict=False):  # three of four installed it
        CheckInFactory(device=device, build=build, reported_at=build.released_at + dt.timedelta(days=day, hours=2))
        CheckInFactory(device=device, build=build, reported_at=build.released_at + dt.timedelta(days=day + 2))
    CheckInFactory(device=DeviceFactory(model=model), build=build, reported_at=now)  # another organisation
    rollouts_refresh(now=now)
    curve = build_dashboard(organisation=org_a, today=now.date()).rollouts[0]
    assert curve["build"] == build
    assert (curve["installed"], curve["eligible"]) == (3, 4)
    assert len(curve["points"]) == 2  # day 1 (2 devices), day 3 (3 devices)
