"""Every model of FleetPatch's apps has a factory in tests/factories.py, and each one builds a valid row."""

from __future__ import annotations

import factory
import pytest
from django.apps import apps

from tests import factories

PROJECT_APPS = ("fleet", "updates", "devices", "alerts")
FACTORIES = {
    obj._meta.model: obj
    for obj in vars(factories).values()
    if isinstance(obj, type) and issubclass(obj, factory.django.DjangoModelFactory) and obj._meta.model
}


def test_every_model_has_a_factory():
    models = {model for label in PROJECT_APPS for model in apps.get_app_config(label).get_models()}
    missing = sorted(model._meta.label for model in models - set(FACTORIES))
    assert not missing, f"add a factory to tests/factories.py for: {missing}"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "factory_class", sorted(FACTORIES.values(), key=lambda f: f.__name__), ids=lambda f: f.__name__
)
def test_each_factory_builds_a_row_its_model_accepts(factory_class):
    row = factory_class()
    row.full_clean()
    assert type(row).objects.filter(pk=row.pk).exists()
