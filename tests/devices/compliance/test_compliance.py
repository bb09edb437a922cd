"""The compliance rules: every status, every threshold on the day before and the day of, and their precedence."""

from __future__ import annotations

import datetime as dt

import pytest

from devices.compliance.engine import recompute
from devices.models import Device, StatusChange
from tests.factories import (
    CompliancePolicyFactory,
    DeviceFactory,
    DeviceModelFactory,
    FleetFactory,
    OrganisationFactory,
    OSBuildFactory,
)

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
TODAY = NOW.date()


def days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


@pytest.fixture
def model():
    return DeviceModelFactory(security_support_until=dt.date(2030, 1, 31))


@pytest.fixture
def old_build(model):
    return OSBuildFactory(model=model, released_at=days_ago(60), security_patch_level=(NOW - dt.timedelta(62)).date())


def make_device(model, build, **kwargs) -> Device:
    defaults = {
        "model": model,
        "current_build": build,
        "reported_build_number": build.build_number if build else "",
        "security_patch_level": build.security_patch_level if build else None,
        "last_check_in_at": days_ago(1),
    }
    defaults.update(kwargs)
    return DeviceFactory(**defaults)


def status_of(device: Device, now: dt.datetime = NOW) -> str:
    recompute(now=now, reason="test")
    device.refresh_from_db()
    return device.compliance_status


def test_device_on_the_latest_build_is_up_to_date(model, old_build):
    device = make_device(model, old_build)
    assert status_of(device) == "up_to_date"
    assert device.latest_build == old_build
    assert device.builds_behind == 0
    assert device.behind_since is None


def test_newer_build_within_grace_makes_the_device_update_pending(model, old_build):
    OSBuildFactory(model=model, released_at=days_ago(13))
    device = make_device(model, old_build)
    assert status_of(device) == "update_pending"
    assert device.builds_behind == 1


def test_grace_boundary_the_day_before_pending_the_day_of_behind(model, old_build):
    newer = OSBuildFactory(model=model, released_at=days_ago(14))
    device = make_device(model, old_build)
    assert status_of(device, now=NOW - dt.timedelta(seconds=1)) == "update_pending"
    assert status_of(device, now=NOW) == "behind"
    assert device.behind_since == (newer.released_at + dt.timedelta(days=14)).date() == TODAY


def test_behind_since_is_when_the_grace_of_the_first_missed_build_ran_out(model, old_build):
    OSBuildFactory(model=model, released_at=days_ago(40))
    OSBuildFactory(model=model, released_at=days_ago(20))
    device = make_device(model, old_build)
    assert status_of(device) == "behind"
    assert device.behind_since == (days_ago(40) + dt.timedelta(days=14)).date()
    assert device.builds_behind == 2


def test_patch_age_boundary_the_day_of_the_limit_is_not_critical_the_day_after_is(model):
    build = OSBuildFactory(model=model, released_at=days_ago(100), security_patch_level=TODAY - dt.timedelta(90))
    device = make_device(model, build)
    assert status_of(device) == "up_to_date"  # exactly 90 days old: not older than 90
    assert status_of(device, now=NOW + dt.timedelta(days=1)) == "critical"


def test_reported_patch_level_wins_over_the_builds(model, old_build):
    device = make_device(model, old_build, security_patch_level=TODAY - dt.timedelta(200))
    assert status_of(device) == "critical"


def test_silence_boundary_29_days_is_reporting_30_days_is_silent(model, old_build):
    device = make_device(model, old_build, last_check_in_at=days_ago(30))
    assert status_of(device, now=NOW - dt.timedelta(seconds=1)) == "up_to_date"
    assert status_of(device, now=NOW) == "silent"


def test_support_boundary_the_last_supported_day_and_the_day_after(old_build, model):
    model.security_support_until = TODAY
    model.save()
    device = make_device(model, old_build)
    assert status_of(device) == "up_to_date"
    assert status_of(device, now=NOW + dt.timedelta(days=1)) == "unsupported"


def test_never_reported_is_unknown(model):
    device = make_device(model, None, last_check_in_at=None)
    assert status_of(device) == "unknown"


def test_a_build_absent_from_the_catalogue_is_unknown(model, old_build):
    device = make_device(model, None, reported_build_number="NOT.IN.CATALOGUE")
    assert status_of(device) == "unknown"


@pytest.mark.parametrize(
    ("silent", "unsupported", "critical", "behind", "expected"),
    [
        (True, True, True, True, "silent"),
        (False, True, True, True, "unsupported"),
        (False, False, True, True, "critical"),
        (False, False, False, True, "behind"),
    ],
)
def test_precedence_silent_unsupported_critical_behind(silent, unsupported, critical, behind, expected):
    model = DeviceModelFactory(security_support_until=TODAY - dt.timedelta(1) if unsupported else None)
    build = OSBuildFactory(model=model, released_at=days_ago(200), security_patch_level=TODAY - dt.timedelta(200))
    if behind:
        OSBuildFactory(model=model, released_at=days_ago(30))
    device = make_device(
        model,
        build,
        last_check_in_at=days_ago(40) if silent else days_ago(1),
        security_patch_level=TODAY - dt.timedelta(200) if critical else TODAY - dt.timedelta(10),
    )
    assert status_of(device) == expected


def test_unknown_because_never_reported_wins_over_everything():
    model = DeviceModelFactory(security_support_until=TODAY - dt.timedelta(1))
    device = make_device(model, None, last_check_in_at=None)
    assert status_of(device) == "unknown"


def test_a_revoked_build_is_never_latest(model, old_build):
    revoked = OSBuildFactory(model=model, released_at=days_ago(20), is_revoked=True, revoked_at=days_ago(18))
    device = make_device(model, old_build)
    assert status_of(device) == "up_to_date"
    assert device.latest_build == old_build != revoked


def test_a_device_on_a_revoked_build_must_move_off_it_from_the_revocation(model, old_build):
    revoked = OSBuildFactory(
        model=model,
        released_at=days_ago(30),
        security_patch_level=TODAY - dt.timedelta(31),
        is_revoked=True,
        revoked_at=days_ago(15),
    )
    device = make_device(model, revoked)
    assert status_of(device) == "behind"
    assert device.latest_build == old_build
    assert device.behind_since == (days_ago(15) + dt.timedelta(days=14)).date()


def test_private_builds_count_only_for_their_organisation(model, old_build):
    ours, theirs = OrganisationFactory(), OrganisationFactory()
    OSBuildFactory(model=model, released_at=days_ago(20), organisation=theirs)
    device = make_device(model, old_build, organisation=ours)
    assert status_of(device) == "up_to_date"
    private = OSBuildFactory(model=model, released_at=days_ago(19), organisation=ours)
    assert status_of(device) == "behind"
    assert device.latest_build == private


def test_stable_devices_ignore_beta_builds_beta_devices_take_them(model, old_build):
    beta = OSBuildFactory(model=model, released_at=days_ago(20), channel="beta")
    stable_device = make_device(model, old_build)
    beta_device = make_device(model, old_build, channel="beta")
    recompute(now=NOW)
    stable_device.refresh_from_db()
    beta_device.refresh_from_db()
    assert (stable_device.compliance_status, stable_device.latest_build) == ("up_to_date", old_build)
    assert (beta_device.compliance_status, beta_device.latest_build) == ("behind", beta)


def test_fleet_policy_wins_over_the_organisations(model, old_build):
    organisation = OrganisationFactory()
    CompliancePolicyFactory(organisation=organisation, grace_days=30)
    strict = FleetFactory(organisation=organisation)
    CompliancePolicyFactory(organisation=organisation, fleet=strict, grace_days=7)
    OSBuildFactory(model=model, released_at=days_ago(10))
    relaxed_device = make_device(model, old_build, organisation=organisation)
    strict_device = make_device(model, old_build, organisation=organisation, fleet=strict)
    recompute(now=NOW)
    relaxed_device.refresh_from_db()
    strict_device.refresh_from_db()
    assert relaxed_device.compliance_status == "update_pending"
    assert strict_device.compliance_status == "behind"


def test_battery_thresholds(model, old_build):
    CompliancePolicyFactory(organisation=(organisation := OrganisationFactory()))
    ok = make_device(model, old_build, organisation=organisation, battery_health_pct=80, battery_installed_on=TODAY)
    worn = make_device(model, old_build, organisation=organisation, battery_health_pct=79)
    day_before = make_device(
        model, old_build, organisation=organisation, battery_installed_on=TODAY - dt.timedelta(729)
    )
    due = make_device(model, old_build, organisation=organisation, battery_installed_on=TODAY - dt.timedelta(730))
    unknown = make_device(model, old_build, organisation=organisation)
    recompute(now=NOW)
    statuses = {d.pk: d.battery_status for d in Device.objects.all()}
    assert statuses[ok.pk] == "ok"
    assert statuses[worn.pk] == "replace_now"
    assert statuses[day_before.pk] == "ok"
    assert statuses[due.pk] == "due"
    assert statuses[unknown.pk] == "unknown"


def test_every_transition_is_recorded_once_with_from_and_to(model, old_build):
    device = make_device(model, old_build)
    recompute(now=NOW)
    OSBuildFactory(model=model, released_at=NOW)
    recompute(now=NOW + dt.timedelta(days=1), reason="sweep")
    recompute(now=NOW + dt.timedelta(days=1), reason="sweep")  # nothing new
    recompute(now=NOW + dt.timedelta(days=15), reason="sweep")
    changes = list(StatusChange.objects.filter(device=device).order_by("changed_at"))
    assert [(c.from_status, c.to_status) for c in changes] == [
        ("unknown", "up_to_date"),
        ("up_to_date", "update_pending"),
        ("update_pending", "behind"),
    ]
    assert changes[-1].reason == "sweep"
    assert changes[-1].organisation_id == device.organisation_id
    device.refresh_from_db()
    assert device.status_since == NOW + dt.timedelta(days=15)


def test_recompute_writes_only_rows_whose_status_changed(model, old_build):
    devices = [make_device(model, old_build) for _ in range(5)]
    assert recompute(now=NOW).updated == 5
    assert recompute(now=NOW).updated == 0
    Device.objects.filter(pk=devices[0].pk).update(last_check_in_at=days_ago(31))
    result = recompute(now=NOW)
    assert result.updated == 1
    assert dict(result.transitions) == {"silent": 1}


def test_scoped_recompute_touches_only_its_scope(model, old_build):
    other_model = DeviceModelFactory()
    other_build = OSBuildFactory(model=other_model, released_at=days_ago(60))
    mine = make_device(model, old_build)
    other = make_device(other_model, other_build)
    recompute(model_id=model.pk, now=NOW)
    mine.refresh_from_db()
    other.refresh_from_db()
    assert (mine.compliance_status, other.compliance_status) == ("up_to_date", "unknown")


def test_retired_devices_are_left_alone(model, old_build):
    device = make_device(model, old_build, retired_at=days_ago(2))
    assert status_of(device) == "unknown"
    assert not StatusChange.objects.exists()
