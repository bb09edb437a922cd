"""Device, check-in and history invariants: each constraint rejects bad data with a clear message."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from devices.models import CheckIn
from devices.validators import luhn_is_valid, validate_imei
from tests.factories import (
    BatteryEventFactory,
    CheckInFactory,
    DeviceFactory,
    OrganisationFactory,
    StatusChangeFactory,
)
from updates.validators import validate_patch_level_not_in_future

pytestmark = pytest.mark.django_db

VALID_IMEI = "490154203237518"  # the textbook example IMEI, check digit 8


def test_luhn_accepts_the_textbook_imei_and_rejects_a_changed_check_digit():
    assert luhn_is_valid(VALID_IMEI)
    assert not luhn_is_valid(VALID_IMEI[:-1] + "9")


def test_imei_with_a_wrong_check_digit_is_rejected_naming_the_check_digit():
    with pytest.raises(ValidationError) as excinfo:
        validate_imei("490154203237519")
    assert excinfo.value.code == "imei_check_digit"
    assert "Luhn check digit" in excinfo.value.messages[0]


@pytest.mark.parametrize("value", ["4901542032375", "4901542032375180", "49015420323751A", ""])
def test_imei_that_is_not_15_digits_is_rejected(value):
    with pytest.raises(ValidationError) as excinfo:
        validate_imei(value)
    assert excinfo.value.code == "imei_format"
    assert "15 digits" in excinfo.value.messages[0]


def test_device_full_clean_reports_a_bad_imei_on_the_imei_field():
    device = DeviceFactory.build(organisation=OrganisationFactory(), model=None, imei="490154203237519")
    with pytest.raises(ValidationError) as excinfo:
        device.full_clean()
    assert set(excinfo.value.message_dict) == {"imei"}


def test_database_refuses_an_imei_that_is_not_15_digits_even_bypassing_validation():
    device = DeviceFactory()
    device.imei = "12345"
    with pytest.raises(IntegrityError), transaction.atomic():
        device.save(update_fields=["imei"])


def test_serial_is_unique_within_an_organisation():
    device = DeviceFactory(serial="ABC123")
    with pytest.raises(IntegrityError), transaction.atomic():
        DeviceFactory(serial="ABC123", organisation=device.organisation)


def test_the_same_serial_may_exist_in_two_organisations():
    DeviceFactory(serial="ABC123")
    DeviceFactory(serial="ABC123")  # another organisation: no error


def test_duplicate_serial_is_reported_with_a_clear_message_by_full_clean():
    device = DeviceFactory(serial="ABC123")
    duplicate = DeviceFactory.build(serial="ABC123", organisation=device.organisation, model=device.model)
    with pytest.raises(ValidationError) as excinfo:
        duplicate.full_clean()
    assert "already has a device with this serial number" in str(excinfo.value)


def test_imei_is_unique_within_an_organisation_but_many_devices_may_have_none():
    device = DeviceFactory(imei=VALID_IMEI)
    DeviceFactory(organisation=device.organisation, imei=None)
    DeviceFactory(organisation=device.organisation, imei=None)
    with pytest.raises(IntegrityError), transaction.atomic():
        DeviceFactory(organisation=device.organisation, imei=VALID_IMEI)


def test_security_patch_level_is_a_date_and_cannot_be_in_the_future():
    validate_patch_level_not_in_future(timezone.now().date())
    with pytest.raises(ValidationError) as excinfo:
        validate_patch_level_not_in_future(timezone.now().date() + dt.timedelta(days=40))
    assert excinfo.value.code == "patch_level_future"
    device = DeviceFactory(security_patch_level=dt.date(2024, 1, 5))
    device.refresh_from_db()
    assert device.security_patch_level == dt.date(2024, 1, 5)


def test_battery_health_over_100_percent_is_refused_by_the_database():
    device = DeviceFactory()
    device.battery_health_pct = 130
    with pytest.raises(IntegrityError), transaction.atomic():
        device.save(update_fields=["battery_health_pct"])


def test_battery_health_over_100_percent_is_reported_by_full_clean():
    device = DeviceFactory.build(organisation=OrganisationFactory(), model=None, battery_health_pct=101)
    with pytest.raises(ValidationError) as excinfo:
        device.full_clean()
    assert "battery_health_pct" in excinfo.value.message_dict


def test_check_in_is_idempotent_on_device_reported_at_and_source():
    check_in = CheckInFactory(source="api")
    with pytest.raises(IntegrityError), transaction.atomic():
        CheckInFactory(device=check_in.device, reported_at=check_in.reported_at, source="api")
    # The same moment from another source is another report.
    CheckInFactory(device=check_in.device, reported_at=check_in.reported_at, source="amapi")
    assert CheckIn.objects.filter(device=check_in.device).count() == 2


def test_a_status_change_must_change_the_status():
    with pytest.raises(IntegrityError), transaction.atomic():
        StatusChangeFactory(from_status="behind", to_status="behind")


def test_battery_event_health_is_a_percentage():
    with pytest.raises(IntegrityError), transaction.atomic():
        BatteryEventFactory(health_pct=150)
