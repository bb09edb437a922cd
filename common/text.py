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
