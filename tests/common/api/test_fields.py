"""Every serializer that validates input follows the edge's rules (issue #15): its text fields are
``TextField`` (common.text's one rule) and its dates ``BoundedDateField`` / ``BoundedDateTimeField``. The
serializers are found in the code (``XSerializer(data=...)`` and the check-in reports' serializer), so a new
one declared with DRF's plain ``CharField`` fails here."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from rest_framework import serializers

from common.api.fields import BoundedDateField, BoundedDateTimeField, TextField

ROOT = Path(__file__).resolve().parents[3]
APPS = ("common", "fleet", "updates", "devices", "alerts")
VALIDATING = re.compile(r"\b([A-Z]\w*Serializer)\(data=")


def input_serializers() -> dict[str, type[serializers.Serializer]]:
    names = {"CheckInReportSerializer"}  # instantiated once and reused for every report (devices.checkins.parsers)
    modules = []
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            names.update(VALIDATING.findall(path.read_text()))
            modules.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    found: dict[str, type[serializers.Serializer]] = {}
    for module in modules:
        namespace = vars(importlib.import_module(module))
        for name in names:
            candidate = namespace.get(name)
            if isinstance(candidate, type) and issubclass(candidate, serializers.Serializer):
                found[name] = candidate
    assert names == set(found), names - set(found)
    return found


SERIALIZERS = input_serializers()

PLAIN = {
    serializers.CharField: TextField,
    serializers.DateField: BoundedDateField,
    serializers.DateTimeField: BoundedDateTimeField,
}


def walk(fields, prefix=""):
    for name, field in fields.items():
        yield f"{prefix}{name}", field
        child = getattr(field, "child", None)
        if isinstance(child, serializers.Field):
            yield f"{prefix}{name}[]", child
        if isinstance(field, serializers.Serializer):
            yield from walk(field.fields, f"{prefix}{name}.")


def test_the_input_serializers_are_found():
    assert {"CheckInReportSerializer", "DeviceEnrolSerializer", "DeviceUpdateSerializer"} <= set(SERIALIZERS)
    assert len(SERIALIZERS) >= 7


@pytest.mark.parametrize("name", sorted(SERIALIZERS))
def test_every_writable_text_and_date_field_of_an_input_serializer_follows_the_edge(name):
    serializer = SERIALIZERS[name]()
    plain = [
        f"{field_name}: {type(field).__name__}, not {PLAIN[type(field)].__name__}"
        for field_name, field in walk(serializer.fields)
        if not field.read_only and type(field) in PLAIN
    ]
    assert not plain, plain
