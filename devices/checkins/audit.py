"""The audit copy of a check-in payload (``CheckIn.raw``): secrets removed, size bounded."""

from __future__ import annotations

import functools
import json
from typing import Any

# The audit copy of a payload is bounded: a misbehaving MDM must not fill the check-in table.
RAW_MAX_BYTES = 16 * 1024
# Keys whose values never reach the audit copy, at any depth (compared lower-case, without - and _).
SECRET_KEY_PARTS = ("token", "secret", "password", "passwd", "authorization", "apikey", "credential", "cookie")


def _is_secret(key: str) -> bool:
    # The same few keys come back in every report of a batch, and in every batch: a short key is folded
    # and searched once per process (a long one, rare and the client's choice, is not kept).
    return _is_secret_key(key) if len(key) <= 64 else _folds_to_secret(key)


def _folds_to_secret(key: str) -> bool:
    folded = key.lower().replace("_", "").replace("-", "")
    return any(part in folded for part in SECRET_KEY_PARTS)


_is_secret_key = functools.lru_cache(maxsize=4096)(_folds_to_secret)


def _has_secrets(value: Any) -> bool:
    # Loops rather than any(generator): this runs on every report of every batch.
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _is_secret(key):
                return True
            if isinstance(item, dict | list) and _has_secrets(item):
                return True
        return False
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list) and _has_secrets(item):
                return True
    return False


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items() if not (isinstance(k, str) and _is_secret(k))}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


def bounded_raw(payload: Any) -> dict | None:
    """The payload as stored for audit: secrets removed, and at most ``RAW_MAX_BYTES`` of JSON; a larger
    one is replaced by its size and its top-level keys."""
    if payload is None:
        return None
    # Copied only when there is something to remove: most reports carry no secret.
    cleaned = _without_secrets(payload) if _has_secrets(payload) else payload
    if not isinstance(cleaned, dict):
        cleaned = {"value": cleaned}
    # surrogatepass: a lone surrogate (refused by the API's parser, not by this function) counts, not crashes.
    text = json.dumps(cleaned, ensure_ascii=False, separators=(",", ":"), default=str)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size <= RAW_MAX_BYTES:
        return cleaned
    return {"truncated": True, "bytes": size, "keys": [str(k)[:100] for k in list(cleaned)[:100]]}
