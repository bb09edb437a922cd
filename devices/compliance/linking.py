"""Devices that reported a model the catalogue did not know get it as soon as the catalogue learns the name
(a new model, a new alias, a manufacturer's new spelling): one UPDATE per model, from the model recompute."""

from __future__ import annotations

from devices.models import Device
from updates.models import DeviceModel


def link_reported_models(*, model_id: int) -> int:
    """Links the devices without a model whose reported model name now means ``model_id``; returns how many.

    1. The distinct names that devices without a model reported (one SELECT on a partial index: a small
       part of the fleet, and far fewer names than devices), resolved under the catalogue's one rule
       (:class:`updates.models.ModelNames`, one SELECT);
    2. one UPDATE of the devices that reported one of the names meaning this model.
    """
    unlinked = Device.objects.filter(model__isnull=True).exclude(reported_model="")
    reported = set(unlinked.values_list("reported_model", flat=True).distinct())
    if not reported:
        return 0
    names = DeviceModel.objects.names()
    meaning = sorted(text for text in reported if names.resolve(text) == model_id)
    if not meaning:
        return 0
    return unlinked.filter(reported_model__in=meaning).update(model_id=model_id)
