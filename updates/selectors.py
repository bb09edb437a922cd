"""Reads of the catalogue: how far a catalogue change reaches, for the previews shown before one is made.

The catalogue never imports the devices app: the devices of a model are reached through the reverse
relation the ``Device.model`` foreign key declares (``DeviceModel.devices``).
"""

from __future__ import annotations

from django.db.models import QuerySet

from fleet.models import Organisation
from updates.models import DeviceModel


def model_active_devices(model: DeviceModel, *, organisation: Organisation | None = None) -> QuerySet:
    """The model's devices still in service (not retired), optionally of one organisation."""
    devices = model.devices.filter(retired_at__isnull=True)
    if organisation is not None:
        devices = devices.filter(organisation=organisation)
    return devices
