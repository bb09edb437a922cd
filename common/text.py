"""Text folding for matching what people and machines type against what is stored."""

from __future__ import annotations

import functools
import re
import unicodedata

from django.core.exceptions import ValidationError
from django.utils.translation import gettext


@functools.lru_cache(maxsize=4096)
def fold(text: str) -> str:
    """Lower case, without accents, punctuation as single spaces: "N° de série" → "n de serie"."""
    decomposed = unicodedata.normalize("NFKD", str(text))
    plain = "".join(char for char in decomposed if not unicodedata.combining(char)).lower()
    return " ".join(re.sub(r"[^0-9a-z]+", " ", plain).split())


@functools.lru_cache(maxsize=4096)
def fold_key(text: str) -> str:
    """A name with case, accents, spaces and dashes ignored ("Core-Z5" = "core z5" = "COREZ5"); "+" kept
    as "plus" so "Fairphone 3" and "Fairphone 3+" stay distinct (as the catalogue's slugs do)."""
    return fold(str(text).replace("+", " plus ")).replace(" ", "")


# What a spreadsheet may run as a formula when a cell starts with it, fullwidth forms included (Excel and
# LibreOffice read "＝1+1" as "=1+1"), and the control characters that start a formula after a tab or return.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
# What the XLSX format cannot hold at all (XML 1.0's Char production): C0 control characters other than tab,
# newline and return, lone surrogates, U+FFFE and U+FFFF; a file holding one is not well-formed.
XLSX_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def inert_cell(text: str) -> str:
    """``text`` as a spreadsheet cell that is never run as a formula: prefixed with ``'`` when a spreadsheet
    would read it as one (``=HYPERLINK(...)``, ``-2+3``, ``＝1``). Every CSV and XLSX FleetPatch writes uses it."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def xlsx_text(text: str) -> str:
    """``text`` as an XLSX cell: inert, and without the control characters the format cannot hold (a row
    stored before the edge refused them must not make the whole export fail)."""
    return inert_cell(XLSX_ILLEGAL.sub("", text))


# What no text FleetPatch stores may hold (issue #15): C0 control characters other than tab and newline (a
# return is turned into a newline first), DEL and the C1 controls, lone surrogates (not encodable as UTF-8),
# and Unicode's noncharacters (U+FDD0..U+FDEF, and the last two code points of every plane: U+FFFE, U+FFFF...).
FORBIDDEN_CHARACTERS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef"
    + "".join(f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(17))
    + "]"
)


def forbidden_character(text: str) -> str | None:
    """Why ``text`` cannot be stored as it is ("the control character U+001B at position 4"), or None."""
    match = FORBIDDEN_CHARACTERS.search(text.replace("\r", "\n"))
    if match is None:
        return None
    return gettext("text cannot contain the character U+%(code)04X (at position %(position)d)") % {
        "code": ord(match.group()),
        "position": match.start() + 1,
    }


def clean_text(text: str) -> str:
    """``text`` as FleetPatch stores it, the one normalisation every way in uses (API, check-ins, imports,
    admin): returns turned into newlines (``\\r\\n`` and a lone ``\\r`` are one ``\\n``), and a
    :class:`django.core.exceptions.ValidationError` naming the first character no page or export could show
    (see ``FORBIDDEN_CHARACTERS``). Nothing else is changed: stripping surrounding spaces is each field's
    business (DRF's and Django's fields do it)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    reason = forbidden_character(text)
    if reason is not None:
        raise ValidationError(reason[:1].upper() + reason[1:] + ".", code="forbidden_character")
    return text
