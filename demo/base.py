"""What every step of the demo seed shares: its defaults, what a run created, rows ensured by natural key,
and the small calendar and random helpers the generators draw from."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from django.db import models

from alerts.models import AlertSubscription
from devices.models import BatteryEvent, CheckIn, Device
from fleet.models import CompliancePolicy, Fleet, Membership, Organisation
from updates.models import DeviceModel, Manufacturer, OSBuild

DEFAULT_DEVICES = 5000
DEFAULT_ORGANISATIONS = 3
DEFAULT_SEED = 42
BATCH_SIZE = 2000

DAY = 86400
_M = TypeVar("_M", bound=models.Model)


@dataclass
class SeedResult:
    """What one run created, per model, and which organisations make up the demo (ministry first)."""

    created: dict[type[models.Model], int] = field(default_factory=dict)
    organisation_slugs: list[str] = field(default_factory=list)

    def add(self, model: type[models.Model], count: int) -> None:
        self.created[model] = self.created.get(model, 0) + count


SEEDED_MODELS: tuple[type[models.Model], ...] = (
    Manufacturer,
    DeviceModel,
    OSBuild,
    Organisation,
    Fleet,
    CompliancePolicy,
    Membership,
    AlertSubscription,
    Device,
    CheckIn,
    BatteryEvent,
)


def ensure(
    model: type[_M], wanted: Iterable[_M], existing: Iterable[_M], *, key: Callable[[_M], Hashable], result: SeedResult
) -> dict[Hashable, _M]:
    """Inserts the ``wanted`` rows whose natural key is not among ``existing``; returns every row by key, with ids."""
    found = {key(obj): obj for obj in existing}
    missing: dict[Hashable, _M] = {}
    for obj in wanted:
        missing.setdefault(key(obj), obj)
    new = [obj for k, obj in missing.items() if k not in found]
    # Both backends return the new ids from a bulk insert (SQLite >= 3.35, PostgreSQL): no re-read needed.
    model.objects.bulk_create(new, batch_size=BATCH_SIZE)
    found.update((key(obj), obj) for obj in new)
    result.add(model, len(new))
    return found


def uniform(index: int, *, salt: int) -> float:
    """A uniform number in [0, 1) from ``index`` alone (SplitMix64), so an index keeps its organisation."""
    mask = (1 << 64) - 1
    z = (index * 0x9E3779B97F4A7C15 + salt * 0xD1B54A32D192ED03) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return (z ^ (z >> 31)) / (1 << 64)


def between(rng: random.Random, low: int, high: int) -> int:
    """``rng.randint(low, high)`` at a fraction of its cost, which counts at a few million draws."""
    return low + int(rng.random() * (high - low + 1))


def add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    return dt.date(day.year + month // 12, month % 12 + 1, min(day.day, 28))


def month_starts(first: dt.date, last: dt.date) -> Iterator[dt.date]:
    """The first day of every month from ``first``'s to ``last``'s."""
    month = first.replace(day=1)
    while month <= last:
        yield month
        month = add_months(month, 1)


def moment(day: dt.date, rng: random.Random) -> dt.datetime:
    """A working-hours moment of ``day``, in UTC."""
    return dt.datetime(day.year, day.month, day.day, rng.randint(6, 17), rng.randint(0, 59), tzinfo=dt.UTC)


def timestamp(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def from_timestamp(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC)
