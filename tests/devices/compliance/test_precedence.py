"""The precedence of the statuses, one test per row of the table in docs/compliance.md ("Statuses")."""

from __future__ import annotations

import datetime as dt

import pytest

from devices.compliance.engine import recompute
from devices.models import Device
from tests.factories import DeviceFactory, DeviceModelFactory, ObservedBuildFactory, OSBuildFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
TODAY = NOW.date()


def ago(days: int) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def patch(days: int) -> dt.date:
    return TODAY - dt.timedelta(days=days)


def _world(row: str) -> Device:
    """A device in the situation of one row of the table (policy defaults: grace 14, patch age 90, silence 30)."""
    supported = DeviceModelFactory(security_support_until=dt.date(2030, 1, 31))
    old = OSBuildFactory(model=supported, build_number="OLD.1", released_at=ago(200), security_patch_level=patch(200))
    current = OSBuildFactory(model=supported, build_number="CUR.1", released_at=ago(20), security_patch_level=patch(25))
    on = {"model": supported, "last_check_in_at": ago(1)}
    if row == "never_reported":
        return DeviceFactory(**{**on, "last_check_in_at": None}, current_build=current)
    if row == "silent":
        return DeviceFactory(
            **{**on, "last_check_in_at": ago(31)}, current_build=current, security_patch_level=patch(25)
        )
    if row == "unsupported":
        ended = DeviceModelFactory(security_support_until=TODAY - dt.timedelta(days=1))
        return DeviceFactory(model=ended, last_check_in_at=ago(1), security_patch_level=patch(400))
    if row == "critical_known_build":
        return DeviceFactory(**on, current_build=old, reported_build_number="OLD.1")
    if row == "critical_unknown_build":
        # The case: a build the catalogue never heard of, a patch level 600 days old.
        return DeviceFactory(**on, reported_build_number="NEVER.HEARD", security_patch_level=patch(600))
    if row == "critical_unknown_model":
        return DeviceFactory(model=None, last_check_in_at=ago(1), security_patch_level=patch(600))
    if row == "cannot_judge":
        return DeviceFactory(**on, reported_build_number="", security_patch_level=None)
    if row == "behind":
        OSBuildFactory(model=supported, build_number="NEW.1", released_at=ago(15), security_patch_level=patch(16))
        return DeviceFactory(**on, current_build=current, reported_build_number="CUR.1")
    if row == "update_pending":
        OSBuildFactory(model=supported, build_number="NEW.1", released_at=ago(5), security_patch_level=patch(6))
        return DeviceFactory(**on, current_build=current, reported_build_number="CUR.1")
    if row == "behind_by_patch_level":
        # No known build, a patch level older than the target's, released past the grace: behind.
        return DeviceFactory(**on, reported_build_number="", security_patch_level=patch(60))
    if row == "up_to_date":
        return DeviceFactory(**on, current_build=current, reported_build_number="CUR.1")
    if row == "up_to_date_unknown_build":
        # A patch level as recent as the target's: nothing to install, though the build is unknown.
        return DeviceFactory(**on, reported_build_number="", security_patch_level=patch(25))
    if row == "up_to_date_observed_build":
        no_builds = DeviceModelFactory()
        device = DeviceFactory(model=no_builds, last_check_in_at=ago(1), reported_build_number="OBS.1")
        ObservedBuildFactory(
            organisation=device.organisation, model=no_builds, build_number="OBS.1", security_patch_level=patch(20)
        )
        return device
    raise AssertionError(row)


ROWS = [
    ("never_reported", "unknown"),
    ("silent", "silent"),
    ("unsupported", "unsupported"),
    ("critical_known_build", "critical"),
    ("critical_unknown_build", "critical"),
    ("critical_unknown_model", "critical"),
    ("cannot_judge", "unknown"),
    ("behind", "behind"),
    ("behind_by_patch_level", "behind"),
    ("update_pending", "update_pending"),
    ("up_to_date", "up_to_date"),
    ("up_to_date_unknown_build", "up_to_date"),
    ("up_to_date_observed_build", "up_to_date"),
]


@pytest.mark.parametrize(("row", "expected"), ROWS, ids=[row for row, _ in ROWS])
def test_each_row_of_the_precedence_table(row, expected):
    device = _world(row)
    recompute(now=NOW, reason="test")
    device.refresh_from_db()
    assert device.compliance_status == expected


def test_an_old_patch_level_outranks_an_unknown_build_and_unsupported_outranks_an_old_patch_level():
    device = _world("critical_unknown_build")
    recompute(now=NOW)
    assert Device.objects.get(pk=device.pk).compliance_status == "critical"
    device.model.security_support_until = TODAY - dt.timedelta(days=1)
    device.model.save()
    recompute(now=NOW)
    assert Device.objects.get(pk=device.pk).compliance_status == "unsupported"
