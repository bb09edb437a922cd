"""Field validators for what identifies a device: IMEIs (the patch level's is ``updates.validators``)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _


def luhn_is_valid(digits: str) -> bool:
    """True when the last digit is the Luhn check digit of the others (ISO/IEC 7812, used by IMEIs)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def validate_imei(value: str) -> None:
    if len(value) != 15 or not value.isdigit():
        raise ValidationError(
            _("An IMEI has exactly 15 digits; %(value)r has %(length)d characters."),
            code="imei_format",
            params={"value": value, "length": len(value)},
        )
    if not luhn_is_valid(value):
        raise ValidationError(
            _("%(value)s is not a valid IMEI: its last digit is not the Luhn check digit of the others."),
            code="imei_check_digit",
            params={"value": value},
        )
