"""Importing battery replacements from a spreadsheet: the same rules as one replacement, idempotent."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.core.management import call_command

from devices.imports.services import battery_replacements_import
from devices.models import BatteryEvent, Device
from tests.factories import BatteryEventFactory, DeviceFactory

pytestmark = pytest.mark.django_db
FRENCH_FILE = (Path(__file__).resolve().parents[2] / "data" / "imports" / "remplacements-batteries-fr.csv").read_bytes()


@pytest.fixture
def worn_devices(org_a):
    return [
        DeviceFactory(
            organisation=org_a,
            serial=serial,
            battery_installed_on=dt.date(2021, 1, 1),
            battery_health_pct=55,
            battery_cycle_count=900,
            battery_status="replace_now",
        )
        for serial in ("CZ5-000101", "CZ5-000103")
    ]


def test_a_french_file_records_each_replacement_and_resets_the_battery_like_one_replacement(
    org_a, worn_devices, manager_a
):
    result = battery_replacements_import(organisation=org_a, data=FRENCH_FILE, recorded_by=manager_a)

    assert [(row.line, row.serial, str(row.outcome)) for row in result.rows] == [
        (2, "CZ5-000101", "created"),
        (3, "CZ5-000103", "created"),
        (4, "CZ5-000101", "failed"),  # the same replacement twice in the file
        (5, "INCONNU-1", "failed"),  # no such device
    ]
    assert result.skipped_lines == 1
    event = BatteryEvent.objects.get(device=worn_devices[0])
    assert (event.kind, event.occurred_at, event.part_serial, event.reason, event.performed_by, event.recorded_by) == (
        "replacement",
        dt.datetime(2025, 2, 14, 12, tzinfo=dt.UTC),
        "BAT-77001",
        "Batterie gonflée",
        "Atelier Rennes",
        manager_a,
    )
    device = Device.objects.get(pk=worn_devices[1].pk)
    assert (device.battery_installed_on, device.battery_health_pct, device.battery_cycle_count) == (
        dt.date(2025, 3, 1),
        None,
        0,
    )
    assert device.battery_status != "replace_now"


def test_reimporting_the_same_replacements_changes_nothing(org_a, worn_devices):
    battery_replacements_import(organisation=org_a, data=FRENCH_FILE)
    events = list(BatteryEvent.objects.values())

    again = battery_replacements_import(organisation=org_a, data=FRENCH_FILE)

    assert again.counts() == {"created": 0, "updated": 0, "unchanged": 2, "failed": 2, "skipped": 1}
    assert list(BatteryEvent.objects.values()) == events


def test_a_replacement_already_recorded_in_the_admin_that_day_is_not_recorded_again(org_a, worn_devices):
    BatteryEventFactory(device=worn_devices[0], occurred_at=dt.datetime(2025, 2, 14, 9, 30, tzinfo=dt.UTC))
    result = battery_replacements_import(organisation=org_a, data=FRENCH_FILE)
    assert [str(row.outcome) for row in result.rows[:2]] == ["unchanged", "created"]


def test_an_older_replacement_is_history_and_never_ages_a_newer_battery(org_a):
    device = DeviceFactory(organisation=org_a, serial="S1", battery_installed_on=dt.date(2025, 6, 1))
    battery_replacements_import(organisation=org_a, data=b"date,serial\n2024-01-10,S1\n")
    device.refresh_from_db()
    assert device.battery_installed_on == dt.date(2025, 6, 1)
    assert BatteryEvent.objects.filter(device=device).count() == 1


def test_replacements_of_another_organisations_device_or_a_retired_one_fail_their_row(org_a, org_b):
    theirs = DeviceFactory(organisation=org_b, serial="THEIRS")
    DeviceFactory(organisation=org_a, serial="RETIRED", retired_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))

    result = battery_replacements_import(
        organisation=org_a, data=b"date,serial\n2025-02-01,THEIRS\n2025-02-01,RETIRED\n2999-01-01,X\n,Y\n"
    )

    assert [row.message for row in result.rows] == [
        "serial number: Ministère A has no device with this serial number.",
        "serial number: this device is retired.",
        "replaced on: 2999-01-01 is in the future.",
        "replaced on: required.",
    ]
    assert not BatteryEvent.objects.exists()
    assert Device.objects.get(pk=theirs.pk).battery_installed_on is None


def test_the_command_imports_battery_replacements(org_a, worn_devices, tmp_path, capsys):
    source = tmp_path / "batteries.csv"
    source.write_bytes(FRENCH_FILE)
    call_command("import_battery_replacements", str(source), "--organisation", org_a.slug)
    assert (
        "batteries.csv: 2 created, 0 updated, 0 unchanged, 2 failed, 1 empty lines skipped." in capsys.readouterr().out
    )
    assert BatteryEvent.objects.count() == 2
