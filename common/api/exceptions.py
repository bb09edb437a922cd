"""How the API says no: DRF's error shapes, a JSON 404, and no input that ends in a 500.

Shapes (documented in docs/api.md, "Errors"):

* a field problem: ``{"field": ["reason", ...]}`` (nested for list items and nested objects);
* anything else: ``{"detail": "reason"}``.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings

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
