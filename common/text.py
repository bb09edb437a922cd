"""Text folding for matching what people and machines type against what is stored."""

from __future__ import annotations

import functools
import re
import unicodedata


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
# What the XLSX format cannot hold at all: C0 control characters other than tab, newline and return.
XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def inert_cell(text: str) -> str:
    """``text`` as a spreadsheet cell that is never run as a formula: prefixed with ``'`` when a spreadsheet
    would read it as one (``=HYPERLINK(...)``, ``-2+3``, ``＝1``). Every CSV and XLSX FleetPatch writes uses it."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def xlsx_text(text: str) -> str:
    """``text`` as an XLSX cell: inert, and without the control characters the format cannot hold (a row
    stored before the edge refused them must not make the whole export fail)."""
    return inert_cell(XLSX_ILLEGAL.sub("", text))
