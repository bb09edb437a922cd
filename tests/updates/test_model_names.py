"""One rule for "which model is this name": the catalogue's resolver, used by check-ins, enrolment, the
API's model fields and imports alike."""

from __future__ import annotations

import pytest

from tests.factories import DeviceModelFactory, ManufacturerFactory
from updates.models import DeviceModel

pytestmark = pytest.mark.django_db


@pytest.fixture
def core_z5():
    return DeviceModelFactory(
        manufacturer=ManufacturerFactory(name="Crosscall", slug="crosscall"), name="Core-Z5", slug="core-z5"
    )


@pytest.fixture
def pixel_8():
    return DeviceModelFactory(
        manufacturer=ManufacturerFactory(name="Google", slug="google"), name="Pixel 8", slug="pixel-8"
    )


@pytest.mark.parametrize(
    "text",
    [
        "Crosscall Core-Z5",
        "crosscall core-z5",
        "Core-Z5",
        "core-z5",
        "COREZ5",
        "Core Z5",
        " core_z5 ",
        "CROSSCALL COREZ5",
    ],
)
def test_a_model_is_named_by_its_full_name_its_name_or_its_slug_whatever_the_case_and_dashes(core_z5, text):
    assert DeviceModel.objects.resolve(text) == core_z5


def test_every_path_reads_a_bare_model_name(pixel_8):
    # Check-ins sent "Pixel 8" and were understood; enrolment refused it: one rule now.
    assert DeviceModel.objects.resolve("Pixel 8") == pixel_8
    assert DeviceModel.objects.names().resolve_many(["Pixel 8", "pixel-8", "Google Pixel 8"]) == {
        "Pixel 8": pixel_8.pk,
        "pixel-8": pixel_8.pk,
        "Google Pixel 8": pixel_8.pk,
    }


def test_an_unknown_or_empty_name_is_none(core_z5):
    assert DeviceModel.objects.resolve("Core-Z6") is None
    assert DeviceModel.objects.resolve("") is None
    assert DeviceModel.objects.names().candidates("   ") == set()


def test_a_name_two_manufacturers_share_is_ambiguous_until_the_manufacturer_is_given(core_z5):
    other = DeviceModelFactory(manufacturer=ManufacturerFactory(name="Other Rugged", slug="other"), name="Core Z5")
    names = DeviceModel.objects.names()
    assert names.candidates("Core-Z5") == {core_z5.pk, other.pk}
    assert names.resolve("Core-Z5") is None
    assert names.resolve("Core-Z5", manufacturer="crosscall") == core_z5.pk
    assert names.resolve("Core-Z5", manufacturer="Other Rugged") == other.pk
    # The full name says which: no manufacturer needed.
    assert names.resolve("Other Rugged Core Z5") == other.pk


def test_a_manufacturer_that_names_none_of_the_candidates_does_not_hide_them(core_z5):
    assert DeviceModel.objects.resolve("Core-Z5", manufacturer="Samsung") == core_z5


def test_plus_is_not_folded_away(pixel_8):
    plus = DeviceModelFactory(manufacturer=pixel_8.manufacturer, name="Pixel 8+", slug="pixel-8-plus")
    assert DeviceModel.objects.resolve("Pixel 8+") == plus
    assert DeviceModel.objects.resolve("Pixel 8") == pixel_8


def test_resolving_many_names_reads_the_catalogue_once(core_z5, pixel_8, django_assert_num_queries):
    with django_assert_num_queries(1):
        names = DeviceModel.objects.names()
        assert [names.resolve(t) for t in ("COREZ5", "Pixel 8", "nope")] == [core_z5.pk, pixel_8.pk, None]
