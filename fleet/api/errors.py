"""How the API says no: DRF's error shapes, a bounded JSON body, a JSON 404, and no input that ends in a 500.

Shapes (documented in README "REST API"):

* a field problem: ``{"field": ["reason", ...]}`` (nested for list items and nested objects);
* anything else: ``{"detail": "reason"}``.
"""

from __future__ import annotations

import codecs
import logging
import math
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils import json

logger = logging.getLogger(__name__)


class RequestBodyTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(gettext("The request body is larger than the limit of %(limit)d bytes.") % {"limit": limit})


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class DatabaseUnavailable(exceptions.APIException):
    """The database cannot be reached (restarting, failing over) or aborted the request: nothing was stored."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "database_unavailable"


# Seconds a client is asked to wait before retrying after a 503 (a restart or failover takes about that).
RETRY_AFTER_SECONDS = 10


def max_body_bytes() -> int:
    return settings.API_MAX_BODY_BYTES


def _check_storable_text(data: Any) -> None:
    """Refuses what JSON allows but a database cannot store: "\\u0000" (PostgreSQL text and jsonb reject
    NUL) and lone surrogates such as "\\ud800" (not encodable as UTF-8). Iterative: the depth is the client's."""
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise ValueError(gettext("text cannot contain the NUL character (\\u0000)"))
            item.encode("utf-8")  # UnicodeEncodeError for a lone surrogate


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


def _django_validation_detail(error: DjangoValidationError) -> dict | list:
    if hasattr(error, "error_dict"):
        return {
            (api_settings.NON_FIELD_ERRORS_KEY if field == "__all__" else field): messages
            for field, messages in error.message_dict.items()
        }
    return {api_settings.NON_FIELD_ERRORS_KEY: error.messages}


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler, plus the errors services raise: a model ValidationError is a 400 with its fields,
    and an IntegrityError (a race two requests lost to a unique constraint) is a 409, not a 500."""
    # Imported here: DRF loads this module (the parser) while rest_framework.views is being defined.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, RequestDataTooBig):
        # Something read request.body before the API's parser did: Django's own limit applied.
        exc = RequestBodyTooLarge(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    elif isinstance(exc, DjangoValidationError):
        exc = serializers.ValidationError(_django_validation_detail(exc))
    elif isinstance(exc, IntegrityError):
        exc = Conflict(gettext("This conflicts with existing data (probably a concurrent request); retry."))
    elif isinstance(exc, OperationalError | InterfaceError):
        # The database went away (or aborted the transaction): the request's transaction was rolled back.
        logger.warning("database unavailable, answering 503: %s", exc)
        exc = DatabaseUnavailable(gettext("The database is unavailable; nothing was stored. Retry in a moment."))
        exc.wait = RETRY_AFTER_SECONDS  # DRF turns it into a Retry-After header
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, list):
        # A bare list (ValidationError("x") raised outside a field) becomes the documented shape.
        response.data = {api_settings.NON_FIELD_ERRORS_KEY: response.data}
    return response


@csrf_exempt
def api_not_found(request: HttpRequest, unmatched: str = "") -> JsonResponse:
    """Unknown URLs under /api/ answer in JSON like the rest of the API, not with an HTML page.

    CSRF-exempt like the API's views (which authenticate by token, never by cookie): otherwise a POST to
    an unknown URL would get the CSRF middleware's HTML 403 instead of this 404."""
    return JsonResponse({"detail": gettext("Not found.")}, status=404)
