"""Aliases: models and manufacturers named as MDMs spell them, under the catalogue's one resolver."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from tests.factories import DeviceModelFactory, ManufacturerFactory, ModelAliasFactory
from updates.models import DeviceModel
from updates.services import manufacturer_alias_add, model_alias_add

pytestmark = pytest.mark.django_db


@pytest.fixture
def zebra():
    return ManufacturerFactory(name="Zebra Technologies", slug="zebra-technologies")


@pytest.fixture
def tc21(zebra):
    model = DeviceModelFactory(manufacturer=zebra, name="TC21 Touch Computer", slug="tc21-touch-computer")
    model_alias_add(model=model, name="TC21")
    return model


@pytest.fixture
def xcover7():
    samsung = ManufacturerFactory(name="Samsung", slug="samsung")
    model = DeviceModelFactory(manufacturer=samsung, name="Galaxy XCover7", slug="galaxy-xcover7")
    model_alias_add(model=model, name="SM-G556B")
    return model


@pytest.mark.parametrize("text", ["SM-G556B", "sm-g556b", "SM G556B", "sm.g556b", "SMG556B/", "samsung SM-G556B"])
def test_a_model_code_names_its_model_whatever_the_case_spaces_and_punctuation(xcover7, text):
    assert DeviceModel.objects.resolve(text) == xcover7


def test_a_manufacturer_alias_names_the_manufacturer_before_any_of_its_models_names(zebra, tc21):
    assert DeviceModel.objects.resolve("Zebra TC21") is None  # "Zebra" is not a spelling of it yet
    manufacturer_alias_add(manufacturer=zebra, name="Zebra")

    names = DeviceModel.objects.names()
    assert {names.resolve(t) for t in ("Zebra TC21", "ZEBRA tc-21", "Zebra Technologies TC21")} == {tc21.pk}
    assert names.resolve("TC21", manufacturer="Zebra") == tc21.pk


def test_an_alias_two_manufacturers_models_share_is_ambiguous_unless_the_manufacturer_says_which(tc21):
    other = DeviceModelFactory(manufacturer=ManufacturerFactory(name="Acme", slug="acme"), name="Rugged 21")
    model_alias_add(model=other, name="TC21")

    assert DeviceModel.objects.resolve("TC21") is None
    assert DeviceModel.objects.names().candidates("TC21") == {tc21.pk, other.pk}
    assert DeviceModel.objects.resolve("TC21", manufacturer="Zebra Technologies") == tc21
    assert DeviceModel.objects.resolve("Acme TC21") == other


def test_an_alias_naming_another_model_of_the_same_manufacturer_is_refused(zebra, tc21):
    tc26 = DeviceModelFactory(manufacturer=zebra, name="TC26", slug="tc26")
    with pytest.raises(ValidationError) as error:
        model_alias_add(model=tc26, name="tc-21")
    assert "Zebra Technologies TC21 Touch Computer" in str(error.value)


def test_a_manufacturer_alias_cannot_be_another_manufacturers_name(zebra):
    ManufacturerFactory(name="Honeywell", slug="honeywell")
    with pytest.raises(ValidationError, match="another manufacturer"):
        manufacturer_alias_add(manufacturer=zebra, name="HONEYWELL")
    manufacturer_alias_add(manufacturer=zebra, name="Zebra")
    with pytest.raises(ValidationError, match="already names"):
        manufacturer_alias_add(manufacturer=ManufacturerFactory(name="Zebra Inc", slug="zebra-inc"), name="zebra")


def test_resolving_reads_the_catalogue_and_every_alias_in_one_select_however_many(
    zebra, tc21, django_assert_num_queries
):
    manufacturer_alias_add(manufacturer=zebra, name="Zebra")
    ModelAliasFactory.create_batch(50)
    with django_assert_num_queries(1):
        names = DeviceModel.objects.names()
    assert names.resolve("Zebra TC21") == tc21.pk
    ModelAliasFactory.create_batch(200)
    with django_assert_num_queries(1):
        names = DeviceModel.objects.names()
    assert names.resolve("zebra tc21") == tc21.pk


def test_an_unknown_name_gets_the_nearest_known_full_names(zebra, tc21, xcover7):
    names = DeviceModel.objects.names()
    assert names.resolve("TC22") is None
    assert names.suggest("TC22")[0] == "Zebra Technologies TC21 Touch Computer"
    assert names.did_you_mean("SM-G556") == "Did you mean Samsung Galaxy XCover7?"
    assert names.did_you_mean("Nothing like it at all") == ""
