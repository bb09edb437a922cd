"""What identifies a device: IMEIs (Luhn), and the placeholder serials and IMEIs that identify nothing.

The placeholder rules live here and nowhere else (the patch level's validator is ``updates.validators``).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# Serial numbers phones, emulators and MDM agents report when they cannot read the real one (Android 10+
# hides Build.getSerial() from apps without the privileged permission: Headwind and others then send
# "unknown"). Compared lower-case, with surrounding spaces removed. Besides these, an empty serial and a
# run of three or more of one character ("000", "0000000000", "XXXXXXXX") are placeholders too
# (is_placeholder_serial).
PLACEHOLDER_SERIALS = frozenset(
    {
        "unknown",
        "0",
        "null",
        "none",
        "nil",
        "undefined",
        "n/a",
        "na",
        "serial",
        "serialno",
        "serial number",
        "default",
        "0123456789abcdef",
        "0123456789",
        "1234567890",
        "123456789",
        "123456789abcdef",
    }
)
# Values some senders put in an IMEI field when they have none: never an IMEI, whatever their length.
PLACEHOLDER_IMEIS = frozenset({"null", "none", "nil", "undefined", "unknown", "n/a", "na", "-"})


def _one_repeated_character(value: str) -> bool:
    return len(set(value)) == 1


def is_placeholder_serial(value: str) -> bool:
    """True for a serial that identifies no phone: empty, a known placeholder (``PLACEHOLDER_SERIALS``,
    case-insensitive) or one character repeated three times or more (all zeros...)."""
    folded = value.strip().lower()
    return not folded or folded in PLACEHOLDER_SERIALS or (len(folded) >= 3 and _one_repeated_character(folded))


def is_placeholder_id(value: str) -> bool:
    """True for an MDM's device id that identifies nothing: empty or a known placeholder (``unknown``...).
    A run of one digit is a real id there (Headwind device numbers are chosen by people: "111")."""
    folded = value.strip().lower()
    return not folded or folded in PLACEHOLDER_SERIALS


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


def is_meid(value: str) -> bool:
    """A 14-character MEID (CDMA: hexadecimal, e.g. ``A0000012345678``, or decimal ``99000012345678``)."""
    return len(value) == 14 and all(char in "0123456789ABCDEFabcdef" for char in value)


def validate_imei(value: str) -> None:
    if value.strip().lower() in PLACEHOLDER_IMEIS:
        raise ValidationError(
            _("%(value)r is a placeholder, not an IMEI."), code="imei_placeholder", params={"value": value}
        )
    if is_meid(value):
        raise ValidationError(
            _("%(value)s is a 14-character MEID (a CDMA identifier), not an IMEI: it is not kept."),
            code="imei_meid",
            params={"value": value},
        )
    if len(value) != 15 or not value.isdigit():
        raise ValidationError(
            _("An IMEI has exactly 15 digits; %(value)r has %(length)d characters."),
            code="imei_format",
            params={"value": value, "length": len(value)},
        )
    if _one_repeated_character(value):
        # 000000000000000 passes the Luhn check: emulators and some agents send it for "no IMEI".
        raise ValidationError(
            _("%(value)s is a placeholder (one digit repeated), not an IMEI."),
            code="imei_placeholder",
            params={"value": value},
        )
    if not luhn_is_valid(value):
        raise ValidationError(
            _("%(value)s is not a valid IMEI: its last digit is not the Luhn check digit of the others."),
            code="imei_check_digit",
            params={"value": value},
        )


def validate_serial(value: str) -> None:
    """A device's serial number may not be a placeholder: it would merge every phone that sends it."""
    if is_placeholder_serial(value):
        raise ValidationError(
            _("%(value)r is a placeholder some phones report, not a serial number."),
            code="serial_placeholder",
            params={"value": value},
        )
