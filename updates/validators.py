"""Field validators of the catalogue's notions, shared by what devices report: security patch levels."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from common.dates import EARLIEST_PATCH_LEVEL


def validate_patch_level_not_in_future(value: dt.date) -> None:
    """A patch level a device can run: not in the future, and not before ``EARLIEST_PATCH_LEVEL`` (a
    clock reset to 1970, year 1). The name is older than the lower bound: migrations refer to it."""
    # One day of slack: a device west of UTC reports "today" before UTC's midnight.
    if value > timezone.now().date() + dt.timedelta(days=1):
        raise ValidationError(
            _("A security patch level cannot be in the future (%(value)s)."),
            code="patch_level_future",
            params={"value": value},
        )
    if value < EARLIEST_PATCH_LEVEL:
        raise ValidationError(
            _("A security patch level cannot be before %(bound)s (%(value)s)."),
            code="patch_level_too_old",
            params={"value": value, "bound": EARLIEST_PATCH_LEVEL.isoformat()},
        )
