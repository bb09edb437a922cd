"""The range of dates and times FleetPatch accepts from outside (issue #15): no year 1, no year 9999.

A date nobody can mean (a phone's clock reset to 1970, a typo's year 9999) is refused at the edge with an
error naming the bound, as every other bad value is: pages compute durations and windows from these
values, and a year-1 date made them fail. The range is wide on purpose; each field may narrow it (a
report cannot be dated in the future, a patch level not before ``EARLIEST_PATCH_LEVEL``).
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext

# Before any Android phone: nothing FleetPatch tracks happened earlier.
EARLIEST_DATE = dt.date(2000, 1, 1)
# Far enough for support dates and planned retirements; far from the calendar's end, where arithmetic fails.
LATEST_DATE = dt.date(2099, 12, 31)
# Android's security patch levels began in October 2015: 2010 leaves room for builds dated before them.
EARLIEST_PATCH_LEVEL = dt.date(2010, 1, 1)


def _as_date(value: dt.date | dt.datetime) -> dt.date:
    if isinstance(value, dt.datetime):
        try:
            return (value.astimezone(dt.UTC) if timezone.is_aware(value) else value).date()
        except OverflowError:  # year 1 at +05:00 is before year 1 in UTC
            return value.date()
    return value


def out_of_range(
    value: dt.date | dt.datetime, *, earliest: dt.date = EARLIEST_DATE, latest: dt.date = LATEST_DATE
) -> str | None:
    """Why ``value`` is outside [earliest, latest] ("it is before 2000-01-01"), or None."""
    day = _as_date(value)
    if day < earliest:
        return gettext("%(value)s is before %(bound)s, the earliest date accepted") % {
            "value": day.isoformat(),
            "bound": earliest.isoformat(),
        }
    if day > latest:
        return gettext("%(value)s is after %(bound)s, the latest date accepted") % {
            "value": day.isoformat(),
            "bound": latest.isoformat(),
        }
    return None


def validate_date_range(value: dt.date | dt.datetime | None) -> None:
    """A ValidationError when ``value`` is outside the sane range (None passes: a blank date is each field's
    business)."""
    if value is None:
        return
    reason = out_of_range(value)
    if reason is not None:
        raise ValidationError(reason[:1].upper() + reason[1:] + ".", code="date_out_of_range")
