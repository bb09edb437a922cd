"""The API's JSON parser: a bounded body, strict JSON, and only what a database can store.

A body over ``API_MAX_BODY_BYTES`` is a 413; NaN, infinities, NUL characters and lone surrogates are a 400
(see :mod:`common.api.exceptions` for the error shapes).
"""

from __future__ import annotations

import codecs
import math
from typing import Any

from django.conf import settings
from django.utils.translation import gettext
from rest_framework import exceptions
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings
from rest_framework.utils import json

from common.api.exceptions import RequestBodyTooLarge


def max_body_bytes() -> int:
    return settings.API_MAX_BODY_BYTES


# Deeper than any report an MDM sends (an AMAPI Device is 4 levels): a document nested ~900 deep decodes
# here but not later, inside Django's deeper stack, where a page showing it would fail (issue #15).
MAX_JSON_DEPTH = 32


def _check_storable_text(data: Any) -> None:
    """Refuses what JSON allows but a database cannot store, or no page could show again: "\\u0000"
    (PostgreSQL text and jsonb reject NUL), lone surrogates such as "\\ud800" (not encodable as UTF-8), and
    nesting deeper than ``MAX_JSON_DEPTH``. Level by level, not recursive: the depth is the client's."""
    level, depth = [data], 0
    while level:
        depth += 1
        below: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                below.extend(item.keys())
                below.extend(item.values())
            elif isinstance(item, list):
                below.extend(item)
            elif isinstance(item, str):
                if "\x00" in item:
                    raise ValueError(gettext("text cannot contain the NUL character (\\u0000)"))
                item.encode("utf-8")  # UnicodeEncodeError for a lone surrogate
        if below and depth >= MAX_JSON_DEPTH and any(isinstance(item, dict | list) for item in below):
            raise ValueError(
                gettext("it is nested deeper than %(max)d levels of objects and lists") % {"max": MAX_JSON_DEPTH}
            )
        level = below


def _finite_float(text: str) -> float:
    # Python reads 1e400 as infinity, which neither PostgreSQL's jsonb nor SQLite's JSON can store.
    value = float(text)
    if math.isinf(value):
        raise ValueError(gettext("the number %(number)s is out of range") % {"number": text[:40]})
    return value


def loads_storable_json(text: str) -> Any:
    """JSON as the API accepts it: strict (no NaN or Infinity constants), and only what a database can
    store. ValueError (or UnicodeError) for anything else; RecursionError when nested too deeply."""
    data = json.loads(text, parse_constant=json.strict_constant, parse_float=_finite_float)
    _check_storable_text(data)
    return data


class BoundedJSONParser(BaseParser):
    """JSON, read from the request stream up to ``API_MAX_BODY_BYTES``; beyond it, a 413.

    Not a subclass of DRF's JSONParser on purpose: for those, DRF reads ``request.body``, which applies
    Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB, meant for forms) and answers a bare 400 page. The
    API has its own limit, sized for bulk check-ins, and says what it is.
    """

    media_type = "application/json"
    renderer_class = JSONRenderer
    strict = api_settings.STRICT_JSON

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        limit = max_body_bytes()
        context = parser_context or {}
        request = context.get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestBodyTooLarge(limit)
        # Read one byte past the limit: a body whose Content-Length lies is caught too.
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestBodyTooLarge(limit)
        if request is not None:
            # Django's own cache of the body: request.body keeps working after the stream was consumed.
            request._request._body = body
        try:
            text = codecs.decode(body, context.get("encoding", settings.DEFAULT_CHARSET))
            data = loads_storable_json(text)
        except (ValueError, UnicodeError, LookupError) as error:
            raise exceptions.ParseError(gettext("Malformed JSON: %(error)s") % {"error": error}) from None
        except RecursionError:
            raise exceptions.ParseError(gettext("Malformed JSON: nested too deeply.")) from None
        return data
