"""A database outage answers 503 with a clear page (or JSON under /api/), not a 500 error page.

The API's views already turn a database error into a 503 (``common.api.exceptions.exception_handler``); this
covers the rest: the admin, the alert pages. Django reconnects by itself once the database is back
(``CONN_HEALTH_CHECKS`` discards a dead connection at the next request), so nothing needs restarting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.utils.translation import gettext

logger = logging.getLogger(__name__)

# Seconds a client is asked to wait before retrying (a restart or a failover takes about that).
RETRY_AFTER_SECONDS = 10


class DatabaseUnavailableMiddleware:
    """A view's ``OperationalError`` or ``InterfaceError`` (database down, restarting, connection lost): a 503."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.warning("database unavailable, answering 503 to %s %s: %s", request.method, request.path, exception)
        message = gettext("The database is unavailable; nothing was saved. Retry in a moment.")
        if request.path.startswith("/api/"):
            response: HttpResponse = JsonResponse({"detail": message}, status=503)
        else:
            # Rendered without the request: context processors would query the database (request.user).
            page = loader.get_template("503.html").render({"message": message, "retry_after": RETRY_AFTER_SECONDS})
            response = HttpResponse(page, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
