"""Statuses that tell the truth: a build change without patch level, future-dated builds, a catalogue without builds."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
import time_machine
from celery.app.task import Task
from django.core.management import call_command
from django.utils import timezone

from devices.checkins.ingest import Submission, checkins_ingest
from devices.checkins.parsers import DeviceIdentity, Report
from devices.compliance.engine import recompute
from devices.compliance.sweeps import sweep_range_run, sweep_start
from devices.models import Device
from tests.factories import DeviceFactory, DeviceModelFactory, OrganisationFactory, OSBuildFactory
from updates.models import DeviceModel
from updates.services import build_publish

pytestmark = pytest.mark.django_db

ENDOFLIFE = "/work/shared/data/endoflife"


def _ingest(device, report, now):
    [result] = checkins_ingest(
        organisation_id=device.organisation_id,
        submissions=[Submission(DeviceIdentity(serial=device.serial), report)],
        can_enrol=False,
        now=now,
    )
    return result


def test_a_build_change_without_a_patch_level_takes_the_new_builds_not_the_stale_one():
    now = timezone.now().replace(microsecond=0)
    model = DeviceModelFactory()
    OSBuildFactory(model=model, build_number="OLD.1", released_at=now - dt.timedelta(days=300))
    new = OSBuildFactory(
        model=model,
        build_number="NEW.2",
        released_at=now - dt.timedelta(days=5),
        security_patch_level=(now - dt.timedelta(days=6)).date(),
    )
    device = DeviceFactory(model=model)
    stale = (now - dt.timedelta(days=300)).date()
    old_report = Report(reported_at=now - dt.timedelta(days=2), build_number="OLD.1", security_patch_level=stale)
    assert _ingest(device, old_report, now).compliance_status == "critical"

    result = _ingest(device, Report(reported_at=now - dt.timedelta(hours=1), build_number="NEW.2"), now)

    device.refresh_from_db()
    assert device.current_build == new
    assert device.security_patch_level is None  # the stale level is gone: the build's applies
    assert device.patch_age_days() == 6
    assert result.compliance_status == "up_to_date"


def test_the_same_build_reported_without_a_patch_level_keeps_the_reported_one():
    now = timezone.now().replace(microsecond=0)
    build = OSBuildFactory(released_at=now - dt.timedelta(days=5))
    device = DeviceFactory(model=build.model)
    level = (now - dt.timedelta(days=3)).date()
    _ingest(
        device,
        Report(reported_at=now - dt.timedelta(days=1), build_number=build.build_number, security_patch_level=level),
        now,
    )
    _ingest(device, Report(reported_at=now - dt.timedelta(hours=1), build_number=build.build_number), now)
    device.refresh_from_db()
    assert device.security_patch_level == level


RELEASE = dt.datetime(2026, 7, 1, 8, 0, tzinfo=dt.UTC)


def _future_world():
    model = DeviceModelFactory()
    current = OSBuildFactory(
        model=model,
        build_number="CUR.1",
        released_at=RELEASE - dt.timedelta(days=40),
        security_patch_level=dt.date(2026, 5, 5),
    )
    future = OSBuildFactory(
        model=model, build_number="FUT.2", released_at=RELEASE, security_patch_level=dt.date(2026, 6, 5)
    )
    device = DeviceFactory(
        model=model,
        current_build=current,
        reported_build_number="CUR.1",
        security_patch_level=current.security_patch_level,
        last_check_in_at=RELEASE - dt.timedelta(days=1),
    )
    return device, current, future


def _sweep():
    run = sweep_start(task_id=None, range_size=1000)
    for lo, hi in run.ranges.values_list("lo", "hi"):
        sweep_range_run(run_id=run.pk, lo=lo, hi=hi)


def test_a_future_dated_build_is_no_target_until_its_release_and_the_first_sweep_after_it_makes_it_one():
    device, current, future = _future_world()
    with time_machine.travel(RELEASE - dt.timedelta(hours=1), tick=False):
        _sweep()
        device.refresh_from_db()
        assert (device.compliance_status, device.latest_build_id, device.builds_behind) == ("up_to_date", current.pk, 0)
    with time_machine.travel(RELEASE + dt.timedelta(minutes=15), tick=False):
        _sweep()
        device.refresh_from_db()
        assert (device.compliance_status, device.latest_build_id, device.builds_behind) == (
            "update_pending",
            future.pk,
            1,
        )


def test_a_pin_on_a_future_dated_build_waits_for_its_release():
    device, current, future = _future_world()
    from updates.models import BuildPin

    BuildPin.objects.create(
        organisation=device.organisation, model=device.model, build=future, pinned_at=RELEASE - dt.timedelta(days=2)
    )
    recompute(now=RELEASE - dt.timedelta(hours=1))
    device.refresh_from_db()
    assert device.latest_build_id == current.pk and device.compliance_status == "up_to_date"
    recompute(now=RELEASE + dt.timedelta(hours=1))
    device.refresh_from_db()
    assert device.latest_build_id == future.pk and device.compliance_status == "update_pending"


def test_publishing_a_future_dated_build_also_enqueues_the_models_recompute_for_its_release(
    django_capture_on_commit_callbacks,
):
    model = DeviceModelFactory()
    released_at = timezone.now() + dt.timedelta(days=3)
    with mock.patch.object(Task, "apply_async", autospec=True) as sent:
        with django_capture_on_commit_callbacks(execute=True):
            build_publish(
                model=model, build_number="FUT.9", security_patch_level=dt.date(2026, 1, 5), released_at=released_at
            )
    etas = [call.kwargs.get("eta") for call in sent.call_args_list if call.args[0].name == "updates.recompute_model"]
    assert etas == [None, released_at]


def test_a_fleet_imported_from_endoflife_files_only_is_judged_on_patch_levels_none_unknown():
    call_command(
        "import_catalogue", f"{ENDOFLIFE}/pixel.md", f"{ENDOFLIFE}/samsung-mobile.md", f"{ENDOFLIFE}/fairphone.md"
    )
    models = list(DeviceModel.objects.filter(security_support_until__gte=timezone.now().date())[:6])
    assert models and not any(m.builds.exists() for m in models)
    org = OrganisationFactory()
    now = timezone.now().replace(microsecond=0)
    devices = []
    for n, model in enumerate(models * 3):
        device = DeviceFactory(organisation=org, model=model, serial=f"EOL-{n}")
        level = (now - dt.timedelta(days=20 if n % 2 else 600)).date()
        _ingest(
            device,
            Report(reported_at=now - dt.timedelta(hours=1), build_number=f"VENDOR.{n % 4}", security_patch_level=level),
            now,
        )
        devices.append(device)

    statuses = {d.serial: Device.objects.get(pk=d.pk).compliance_status for d in devices}
    assert "unknown" not in statuses.values(), statuses
    assert {statuses[f"EOL-{n}"] for n in range(0, len(devices), 2)} == {"critical"}
