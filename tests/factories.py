"""factory_boy factories for every model; tests build exactly the data they talk about."""

from __future__ import annotations

import datetime as dt

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from alerts.choices import DeliveryStatus
from alerts.models import AlertSubscription, DigestDelivery, DigestMessage, Unsubscription
from devices.choices import ImportKind
from devices.models import (
    BatteryEvent,
    BuildRollout,
    CheckIn,
    ComplianceSnapshot,
    Device,
    DeviceSourceId,
    DeviceTally,
    ImportJob,
    ObservedBuild,
    PubSubMessage,
    RejectedMessage,
    StatusChange,
    SweepRange,
    SweepRun,
    TaskDelivery,
    Waiver,
)
from fleet.choices import Role
from fleet.models import ApiClient, CompliancePolicy, Fleet, Membership, Organisation
from updates.models import BuildPin, DeviceModel, Manufacturer, ManufacturerAlias, ModelAlias, OSBuild


def imei_with_check_digit(body14: str) -> str:
    """Appends the Luhn check digit to 14 digits."""
    for digit in "0123456789":
        candidate = body14 + digit
        total = 0
        for position, char in enumerate(reversed(candidate)):
            value = int(char) * (2 if position % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    is_staff = True
    password = factory.django.Password("correct horse battery staple")


class OrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organisation
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Organisation {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class FleetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Fleet

    organisation = factory.SubFactory(OrganisationFactory)
    name = factory.Sequence(lambda n: f"Fleet {n}")
    slug = factory.Sequence(lambda n: f"fleet-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organisation = factory.SubFactory(OrganisationFactory)
    role = Role.MANAGER


class CompliancePolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CompliancePolicy

    organisation = factory.SubFactory(OrganisationFactory)


class ApiClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiClient

    organisation = factory.SubFactory(OrganisationFactory)
    name = factory.Sequence(lambda n: f"MDM {n}")
    scopes = factory.LazyFunction(lambda: ["read", "report"])
    token_prefix = factory.Sequence(lambda n: f"tok{n:05d}")
    token_hash = factory.Sequence(lambda n: f"{n:064x}")


class ManufacturerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Manufacturer
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Maker {n}")
    slug = factory.Sequence(lambda n: f"maker-{n}")


class DeviceModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeviceModel

    manufacturer = factory.SubFactory(ManufacturerFactory)
    name = factory.Sequence(lambda n: f"Rugged {n}")
    slug = factory.Sequence(lambda n: f"rugged-{n}")
    launched_on = dt.date(2023, 1, 15)
    security_support_until = dt.date(2030, 1, 31)
    os_support_until = dt.date(2028, 1, 31)


class ManufacturerAliasFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ManufacturerAlias

    manufacturer = factory.SubFactory(ManufacturerFactory)
    name = factory.Sequence(lambda n: f"Maker Co {n}")


class ModelAliasFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelAlias

    model = factory.SubFactory(DeviceModelFactory)
    name = factory.Sequence(lambda n: f"RG-{1000 + n}")


class OSBuildFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OSBuild

    model = factory.SubFactory(DeviceModelFactory)
    build_number = factory.Sequence(lambda n: f"UQ1A.{240000 + n}.001")
    android_version = "14"
    security_patch_level = dt.date(2024, 1, 5)
    released_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=30))


class ObservedBuildFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ObservedBuild

    organisation = factory.SubFactory(OrganisationFactory)
    model = factory.SubFactory(DeviceModelFactory)
    build_number = factory.Sequence(lambda n: f"OBS.{240000 + n}.001")
    android_version = "14"
    security_patch_level = factory.LazyFunction(lambda: timezone.now().date() - dt.timedelta(days=20))
    first_seen_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=20))
    last_seen_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(hours=1))


class DeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Device

    organisation = factory.SubFactory(OrganisationFactory)
    serial = factory.Sequence(lambda n: f"SN{n:08d}")
    imei = factory.Sequence(lambda n: imei_with_check_digit(f"35{n:012d}"))
    model = factory.SubFactory(DeviceModelFactory)


class DeviceSourceIdFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeviceSourceId

    device = factory.SubFactory(DeviceFactory)
    organisation = factory.SelfAttribute("device.organisation")
    source = "headwind"
    external_id = factory.Sequence(lambda n: f"h{n:05d}")


class CheckInFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CheckIn

    device = factory.SubFactory(DeviceFactory)
    reported_at = factory.LazyFunction(timezone.now)
    build_number = "UQ1A.240105.004"
    security_patch_level = dt.date(2024, 1, 5)


class BatteryEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BatteryEvent

    device = factory.SubFactory(DeviceFactory)
    part_serial = factory.Sequence(lambda n: f"BAT-{n:06d}")


class StatusChangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StatusChange

    device = factory.SubFactory(DeviceFactory)
    organisation = factory.SelfAttribute("device.organisation")
    from_status = "up_to_date"
    to_status = "behind"


class WaiverFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Waiver

    device = factory.SubFactory(DeviceFactory)
    organisation = factory.SelfAttribute("device.organisation")
    reason = "Field trial"
    expires_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(days=30))


class ComplianceSnapshotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ComplianceSnapshot

    organisation = factory.SubFactory(OrganisationFactory)
    day = factory.LazyFunction(lambda: timezone.now().date())
    status = "up_to_date"
    count = 1


class DeviceTallyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeviceTally

    organisation = factory.SubFactory(OrganisationFactory)
    model = factory.SubFactory(DeviceModelFactory)
    compliance_status = "up_to_date"
    battery_status = "ok"
    patch_bucket = "0-30"
    on_target = True
    is_waived = False
    count = 1
    computed_at = factory.LazyFunction(timezone.now)


class ImportJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ImportJob

    organisation = factory.SubFactory(OrganisationFactory)
    kind = ImportKind.DEVICES
    filename = "devices.csv"
    content = b"serial\nSN1\n"


class BuildPinFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BuildPin

    build = factory.SubFactory(OSBuildFactory)
    model = factory.SelfAttribute("build.model")
    organisation = factory.SubFactory(OrganisationFactory)
    pinned_at = factory.LazyFunction(timezone.now)


class BuildRolloutFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BuildRollout

    organisation = factory.SubFactory(OrganisationFactory)
    build = factory.SubFactory(OSBuildFactory)
    days_since_release = 3
    installed = 1
    eligible = 2
    computed_at = factory.LazyFunction(timezone.now)


class SweepRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SweepRun

    started_at = factory.LazyFunction(timezone.now)
    range_size = 100_000


class SweepRangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SweepRange

    run = factory.SubFactory(SweepRunFactory)
    lo = 1
    hi = 100_000


class TaskDeliveryFactory(factory.django.DjangoModelFactory):
    """A task given up after killing its worker twice."""

    class Meta:
        model = TaskDelivery

    task_id = factory.Sequence(lambda n: f"3f1d2c1e-0000-4000-8000-{n:012d}")
    name = "devices.preview_import"
    arguments = "1"
    starts = 3
    poisoned_at = factory.LazyFunction(timezone.now)
    reason = "Started 2 times without finishing."


class AlertSubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AlertSubscription

    organisation = factory.SubFactory(OrganisationFactory)
    name = factory.Sequence(lambda n: f"Morning digest {n}")


class DigestDeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DigestDelivery

    subscription = factory.SubFactory(AlertSubscriptionFactory)
    period = factory.LazyFunction(lambda: timezone.now().replace(minute=0, second=0, microsecond=0))
    status = DeliveryStatus.CLAIMED


class DigestMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DigestMessage

    delivery = factory.SubFactory(DigestDeliveryFactory)
    address = factory.Sequence(lambda n: f"recipient{n}@example.org")


class UnsubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Unsubscription

    subscription = factory.SubFactory(AlertSubscriptionFactory)
    address = factory.Sequence(lambda n: f"left{n}@example.org")
    via = "page"


class RejectedMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RejectedMessage

    organisation = factory.SubFactory(OrganisationFactory)
    notification_type = "STATUS_REPORT"
    message_id = factory.Sequence(lambda n: f"1369693469{n:02d}")
    kind = "device"
    errors = factory.LazyFunction(lambda: {"networkInfo.imei": ["An IMEI has exactly 15 digits."]})
    raw = factory.LazyFunction(lambda: {"name": "enterprises/LC00abcd/devices/3a1b2c3d4e5f"})


class PubSubMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PubSubMessage

    organisation = factory.SubFactory(OrganisationFactory)
    message_id = factory.Sequence(lambda n: f"2469693469{n:02d}")
