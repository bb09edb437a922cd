"""Catalogue invariants: builds unique per (model, build number, organisation), dates that make sense."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tests.factories import DeviceModelFactory, OrganisationFactory, OSBuildFactory
from updates.models import OSBuild

pytestmark = pytest.mark.django_db


def test_a_public_build_number_is_unique_per_model():
    build = OSBuildFactory(build_number="UQ1A.240105.004")
    with pytest.raises(IntegrityError), transaction.atomic():
        OSBuildFactory(model=build.model, build_number="UQ1A.240105.004")


def test_the_same_build_number_may_exist_for_two_models():
    build = OSBuildFactory(build_number="UQ1A.240105.004")
    OSBuildFactory(build_number="UQ1A.240105.004")
    assert build.model.builds.count() == 1


def test_an_organisation_may_publish_a_private_build_with_a_public_builds_number():
    build = OSBuildFactory(build_number="UQ1A.240105.004")
    organisation = OrganisationFactory()
    OSBuildFactory(model=build.model, build_number="UQ1A.240105.004", organisation=organisation)
    with pytest.raises(IntegrityError), transaction.atomic():
        OSBuildFactory(model=build.model, build_number="UQ1A.240105.004", organisation=organisation)
    # Another organisation's private build with that number is its own.
    OSBuildFactory(model=build.model, build_number="UQ1A.240105.004", organisation=OrganisationFactory())


def test_duplicate_public_build_is_explained_by_full_clean():
    build = OSBuildFactory(build_number="UQ1A.240105.004")
    duplicate = OSBuildFactory.build(model=build.model, build_number="UQ1A.240105.004")
    with pytest.raises(ValidationError) as excinfo:
        duplicate.full_clean()
    assert "already has a public build with this number" in str(excinfo.value)


def test_support_cannot_end_before_launch():
    model = DeviceModelFactory.build(
        manufacturer=DeviceModelFactory().manufacturer,
        launched_on=dt.date(2024, 1, 1),
        security_support_until=dt.date(2023, 1, 1),
    )
    with pytest.raises(ValidationError) as excinfo:
        model.full_clean()
    assert "Security updates cannot end before the model is launched" in str(excinfo.value)
    with pytest.raises(IntegrityError), transaction.atomic():
        model.save()


def test_is_supported_on_is_inclusive_of_the_last_day():
    model = DeviceModelFactory.build(security_support_until=dt.date(2025, 6, 30))
    assert model.is_supported_on(dt.date(2025, 6, 30))
    assert not model.is_supported_on(dt.date(2025, 7, 1))
    assert DeviceModelFactory.build(security_support_until=None).is_supported_on(dt.date(2099, 1, 1))


def test_an_organisation_sees_public_builds_and_its_own_private_ones_only():
    model = DeviceModelFactory()
    mine, theirs = OrganisationFactory(), OrganisationFactory()
    public = OSBuildFactory(model=model, build_number="PUB.1")
    private = OSBuildFactory(model=model, build_number="PUB.1", organisation=mine)
    OSBuildFactory(model=model, build_number="THEIRS.1", organisation=theirs)
    assert set(OSBuild.objects.visible_to(mine)) == {public, private}
    assert set(OSBuild.objects.visible_to(theirs.pk).values_list("build_number", flat=True)) == {"PUB.1", "THEIRS.1"}
    # The organisation's private build comes before the public one of the same number.
    assert list(OSBuild.objects.visible_to(mine).filter(build_number="PUB.1").private_first()) == [private, public]
