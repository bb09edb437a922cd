"""``manage.py seed_demo``: the demo fleet is believable, consistent, deterministic and idempotent."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import F, Model
from django.utils import timezone

from demo.base import SEEDED_MODELS
from demo.organisations import MINISTRY_SLUG, demo_organisations
from demo.services import seed_demo
from devices.choices import BatteryEventKind, CheckInSource
from devices.models import BatteryEvent, CheckIn, Device
from devices.validators import validate_imei
from fleet.models import CompliancePolicy, Fleet, Organisation
from updates.choices import Channel
from updates.models import DeviceModel, OSBuild

pytestmark = pytest.mark.django_db

DEVICES = 300


def seed(devices: int = DEVICES, organisations: int = 3, *extra: str) -> str:
    out = StringIO()
    call_command(
        "seed_demo",
        "--devices",
        str(devices),
        "--organisations",
        str(organisations),
        *extra,
        stdout=out,
        stderr=StringIO(),
    )
    return out.getvalue()


def counts() -> dict[type[Model], int]:
    return {model: model._default_manager.count() for model in SEEDED_MODELS}


def reported(output: str) -> dict[str, tuple[int, int]]:
    """The command's summary as {table: (created, in all)}."""
    return {
        table: (int(created), int(total))
        for table, created, total in re.findall(r"^\s+(.+): (\d+) created, (\d+) in all$", output, re.MULTILINE)
    }


@pytest.fixture
def output() -> str:
    return seed()


@pytest.fixture
def ministry(output: str) -> Organisation:
    return Organisation.objects.get(slug=MINISTRY_SLUG)


def test_the_summary_names_each_table_and_matches_what_is_in_the_database(output: str) -> None:
    summary = reported(output)
    for model, count in counts().items():
        assert summary[str(model._meta.verbose_name_plural)] == (count, count)
    assert summary["devices"] == (DEVICES, DEVICES)
    assert summary["organisations"] == (3, 3)
    assert f"{DEVICES} devices over 3 organisations" in output


def test_the_progress_bar_goes_to_stderr_and_the_summary_to_stdout(db: None) -> None:
    out, err = StringIO(), StringIO()
    call_command("seed_demo", "--devices", "30", stdout=out, stderr=err)
    assert "30/30" in err.getvalue()
    assert "30/30" not in out.getvalue()
    assert reported(out.getvalue())["devices"] == (30, 30)


def test_verbosity_zero_prints_nothing_and_still_seeds(db: None) -> None:
    out, err = StringIO(), StringIO()
    call_command("seed_demo", "--devices", "10", "--verbosity", "0", stdout=out, stderr=err)
    assert (out.getvalue(), err.getvalue()) == ("", "")
    assert Device.objects.count() == 10


def test_the_ministry_comes_first_and_holds_about_seventy_percent_of_the_devices(ministry: Organisation) -> None:
    assert ministry.name.startswith("Ministère")
    share = Device.objects.filter(organisation=ministry).count() / DEVICES
    assert 0.6 < share < 0.8
    assert Fleet.objects.filter(organisation=ministry).count() >= 5
    assert Fleet.objects.filter(organisation=ministry, name="Île-de-France").exists()
    for company in Organisation.objects.exclude(pk=ministry.pk):
        assert 1 <= company.fleets.count() <= 3
        assert company.devices.exists()


def test_every_organisation_has_a_default_policy_and_one_fleet_a_stricter_one(output: str) -> None:
    for organisation in Organisation.objects.all():
        assert CompliancePolicy.objects.filter(organisation=organisation, fleet__isnull=True).count() == 1
    fleet_policy = CompliancePolicy.objects.get(fleet__isnull=False)
    default = CompliancePolicy.objects.get(organisation=fleet_policy.organisation, fleet__isnull=True)
    assert fleet_policy.fleet.organisation_id == fleet_policy.organisation_id
    assert fleet_policy.grace_days < default.grace_days
    assert fleet_policy.max_silence_days < default.max_silence_days
    assert fleet_policy.battery_min_health_pct > default.battery_min_health_pct


def test_every_device_belongs_to_an_organisation_whose_fleets_it_uses(output: str) -> None:
    assert Device.objects.exclude(fleet=None).exclude(fleet__organisation=F("organisation")).count() == 0
    assert Device.objects.filter(fleet=None).count() < DEVICES * 0.1


def test_every_imei_passes_the_luhn_check_and_a_few_devices_have_none(output: str) -> None:
    imeis = list(Device.objects.exclude(imei=None).values_list("imei", flat=True))
    for imei in imeis:
        validate_imei(imei)
    assert DEVICES * 0.85 < len(imeis) < DEVICES


def test_every_devices_newest_check_in_is_its_current_state(output: str) -> None:
    newest: dict[int, CheckIn] = {}
    per_device: dict[int, list[dt.datetime]] = defaultdict(list)
    for check_in in CheckIn.objects.order_by("device_id", "-reported_at"):
        newest.setdefault(check_in.device_id, check_in)
        per_device[check_in.device_id].append(check_in.reported_at)
        assert check_in.source == CheckInSource.DEMO
    for device in Device.objects.all():
        check_in = newest.get(device.pk)
        if check_in is None:
            assert (device.last_check_in_at, device.current_build_id, device.reported_build_number) == (None, None, "")
            continue
        assert device.last_check_in_at == check_in.reported_at
        assert device.current_build_id == check_in.build_id
        assert device.reported_build_number == check_in.build_number
        assert device.android_version == check_in.android_version
        assert device.security_patch_level == check_in.security_patch_level
        assert (device.battery_level_pct, device.battery_health_pct, device.battery_cycle_count) == (
            check_in.battery_level_pct,
            check_in.battery_health_pct,
            check_in.battery_cycle_count,
        )
        assert 1 <= len(per_device[device.pk]) <= 5
        assert min(per_device[device.pk]) >= device.enrolled_at


def test_devices_run_builds_of_their_own_model_that_were_out_when_they_reported(output: str) -> None:
    devices = Device.objects.exclude(current_build=None).select_related("current_build")
    assert devices.count() > DEVICES * 0.9
    for device in devices:
        assert device.current_build.model_id == device.model_id
        assert device.current_build.released_at <= device.last_check_in_at
        assert device.current_build.organisation_id in (None, device.organisation_id)
        assert device.current_build.channel == device.channel
    for check_in in CheckIn.objects.exclude(build=None).select_related("build", "device"):
        assert check_in.build.model_id == check_in.device.model_id
        assert check_in.build.released_at <= check_in.reported_at


def test_the_fleet_has_stragglers_silent_devices_unknown_builds_and_devices_that_never_reported(output: str) -> None:
    now = timezone.now()
    assert Device.objects.filter(last_check_in_at=None).exists()
    assert Device.objects.filter(last_check_in_at__lt=now - dt.timedelta(days=30)).exists()
    assert Device.objects.filter(last_check_in_at__gt=now - dt.timedelta(days=3)).count() > DEVICES * 0.8
    unknown = Device.objects.filter(current_build=None).exclude(reported_build_number="")
    assert unknown.exists()
    assert not OSBuild.objects.filter(build_number__in=unknown.values("reported_build_number")).exists()
    stale = Device.objects.filter(security_patch_level__lt=now.date() - dt.timedelta(days=365))
    assert 0 < stale.count() < DEVICES * 0.3


def test_the_ministry_runs_its_own_os_on_its_main_models(ministry: Organisation) -> None:
    private = OSBuild.objects.filter(organisation=ministry)
    assert private.count() >= 10
    assert all(number.startswith("MININT-") for number in private.values_list("build_number", flat=True))
    on_private = Device.objects.filter(organisation=ministry, current_build__organisation=ministry)
    assert on_private.exists()
    assert not Device.objects.exclude(organisation=ministry).filter(current_build__organisation=ministry).exists()


def test_the_catalogue_has_a_model_past_support_and_one_losing_it_within_180_days(output: str) -> None:
    today = timezone.now().date()
    assert DeviceModel.objects.filter(security_support_until__lt=today).exists()
    assert DeviceModel.objects.filter(
        security_support_until__gt=today, security_support_until__lte=today + dt.timedelta(days=180)
    ).exists()
    assert DeviceModel.objects.filter(security_support_until__gt=today + dt.timedelta(days=3 * 365)).count() >= 3
    for model in DeviceModel.objects.all():
        assert model.launched_on <= model.os_support_until <= model.security_support_until


def test_revoked_builds_exist_and_are_never_the_newest_of_their_line(output: str) -> None:
    revoked = OSBuild.objects.filter(is_revoked=True)
    assert revoked.exists()
    for build in revoked:
        assert build.revoked_at >= build.released_at
        assert OSBuild.objects.filter(
            model=build.model,
            channel=build.channel,
            organisation=build.organisation,
            is_revoked=False,
            released_at__gt=build.released_at,
        ).exists()


def test_build_histories_climb_month_after_month_up_to_now(output: str) -> None:
    now = timezone.now()
    lines: dict[tuple, list[OSBuild]] = defaultdict(list)
    for build in OSBuild.objects.order_by("released_at"):
        lines[(build.model_id, build.organisation_id, build.channel)].append(build)
        assert build.security_patch_level.day in (1, 5)
        assert build.security_patch_level < build.released_at.date() <= now.date()
    for (_, _, channel), builds in lines.items():
        if channel == Channel.STABLE:
            versions = [int(build.android_version) for build in builds]
            assert versions == sorted(versions)
    for model in DeviceModel.objects.filter(security_support_until__gt=now.date()):
        assert model.builds.filter(channel=Channel.BETA).count() >= 2
        assert model.builds.filter(channel=Channel.STABLE, released_at__gt=now - dt.timedelta(days=62)).exists()
    past = DeviceModel.objects.filter(security_support_until__lt=now.date()).first()
    assert past.builds.latest("released_at").security_patch_level <= past.security_support_until


def test_battery_replacements_agree_with_the_devices_battery_dates(output: str) -> None:
    replacements = BatteryEvent.objects.filter(kind=BatteryEventKind.REPLACEMENT)
    assert replacements.exists()
    replaced_on = {event.device_id: event.occurred_at.date() for event in replacements.order_by("occurred_at")}
    for device in Device.objects.all():
        expected = replaced_on.get(device.pk, device.enrolled_at.date())
        assert device.battery_installed_on == expected
    health = list(Device.objects.exclude(battery_health_pct=None).values_list("battery_health_pct", flat=True))
    assert 0 < sum(pct < 80 for pct in health) < len(health) * 0.3


def test_a_second_run_with_the_same_arguments_creates_nothing(output: str) -> None:
    before = counts()
    again = seed()
    assert counts() == before
    assert all(created == 0 for created, _ in reported(again).values())


def test_a_larger_run_adds_exactly_the_missing_devices_and_leaves_the_others_alone(output: str) -> None:
    before = counts()
    check_ins_before = set(CheckIn.objects.values_list("id", flat=True))
    seed(DEVICES + 60)
    after = counts()
    assert after[Device] == before[Device] + 60
    assert all(after[model] == before[model] for model in (DeviceModel, OSBuild, Organisation, Fleet))
    new_check_ins = CheckIn.objects.exclude(id__in=check_ins_before)
    assert new_check_ins.count() == after[CheckIn] - before[CheckIn] > 0
    assert new_check_ins.values("device").distinct().count() <= 60


def test_the_same_seed_builds_the_same_fleet_and_another_seed_a_different_one(db: None) -> None:
    now = dt.datetime(2026, 3, 14, 9, 30, tzinfo=dt.UTC)
    fields = ("serial", "imei", "model__slug", "fleet__slug", "reported_build_number", "last_check_in_at", "assignee")

    def fleet_with(seed_value: int) -> list[tuple]:
        seed_demo(devices=80, seed=seed_value, now=now)
        snapshot = list(Device.objects.order_by("serial").values_list(*fields))
        Device.objects.all().delete()
        return snapshot

    first = fleet_with(7)
    assert fleet_with(7) == first
    other = fleet_with(8)
    assert other != first
    assert [row[0] for row in other] == [row[0] for row in first]  # a device's serial does not depend on the seed


def test_seeding_writes_in_bulk(django_assert_max_num_queries) -> None:
    # A save() per row would be well over a thousand queries here; SQLite's bulk inserts split at 999 parameters.
    # (A few queries per organisation too: its manager, membership, role group and subscription.)
    with django_assert_max_num_queries(80):
        seed_demo(devices=DEVICES)
    assert Device.objects.count() == DEVICES


@pytest.mark.parametrize("option", [("--organisations", "0"), ("--devices", "-1"), ("--devices", "many")])
def test_the_command_refuses_impossible_numbers(db: None, option: tuple[str, str]) -> None:
    with pytest.raises(CommandError):
        call_command("seed_demo", *option, stdout=StringIO(), stderr=StringIO())
    assert not Device.objects.exists()


def test_with_one_organisation_the_ministry_holds_every_device(db: None) -> None:
    seed(40, 1)
    assert Organisation.objects.get().slug == MINISTRY_SLUG
    assert Device.objects.count() == 40


def test_beyond_the_named_companies_every_organisation_still_gets_fleets_policies_and_devices(db: None) -> None:
    seed(400, 9)
    organisations = Organisation.objects.all()
    assert set(demo_organisations(9)) == set(organisations)
    assert len(organisations) == 9
    for organisation in organisations:
        assert organisation.devices.exists()
        assert organisation.fleets.exists()
        assert organisation.policies.filter(fleet=None).exists()


def test_the_demo_fleet_opens_on_computed_statuses_across_the_range(output: str) -> None:
    statuses = set(Device.objects.values_list("compliance_status", flat=True))
    assert {"up_to_date", "behind", "unsupported"} <= statuses
    assert "Compliance evaluated:" in output
