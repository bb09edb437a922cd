"""A dependency that is down or frozen answers 503 with Retry-After and a clear page (or JSON under /api/).

- ``RequestDeadlineMiddleware``: a request still running after ``WEB_REQUEST_DEADLINE_SECONDS`` is cut short.
  That is the bound on a wait for a frozen PostgreSQL or Redis, whose kernel accepts connections and data while
  the server never answers (connect and statement timeouts cannot fire then; see ``common.deadline``).
- ``DatabaseUnavailableMiddleware``: a view's database error (down, restarting, a statement cancelled by its
  ``statement_timeout``) is a 503, not a 500.

The API's views already turn a database error into a 503 (``common.api.exceptions.exception_handler``); these
cover the rest: the admin, the alert pages. Django reconnects by itself once the database is back
(``CONN_HEALTH_CHECKS`` discards a dead connection at the next request), so nothing needs restarting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.utils.translation import gettext

from common.api.exceptions import RETRY_AFTER_SECONDS  # the API's 503s and these ask for the same wait
from common.db import (
    close_failed_connections,
    close_interrupted_connections,
    database_unavailable,
    mark_database_unavailable,
)
from common.deadline import DeadlineExceeded, deadline

logger = logging.getLogger(__name__)


def unavailable_response(request: HttpRequest, message: str) -> HttpResponse:
    """A 503 with ``Retry-After``: JSON ``{"detail": message}`` under /api/, the 503 page elsewhere."""
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"detail": message}, status=503)
    else:
        # Rendered without the request: context processors would query the database (request.user).
        page = loader.get_template("503.html").render({"message": message, "retry_after": RETRY_AFTER_SECONDS})
        response = HttpResponse(page, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class RequestDeadlineMiddleware:
    """Cuts a request short after ``WEB_REQUEST_DEADLINE_SECONDS``: a 503 with Retry-After, connections closed.

    The deadline raises ``DeadlineExceeded`` wherever the request waits; the middleware below may have turned it
    into a 500 page already, so the answer is replaced by the 503 whenever the deadline passed. The database
    connections the request used may be mid-query: they are closed, and the next request opens fresh ones.
    Only in the main thread (gunicorn's sync workers); elsewhere (runserver's threads) requests are not bounded.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(f"/{settings.STATIC_URL.lstrip('/')}") and database_unavailable():
            # The database froze under this process a moment ago: answer now rather than wait the deadline again.
            return unavailable_response(
                request, gettext("The database is unavailable; nothing was saved. Retry in a moment.")
            )
        seconds = settings.WEB_REQUEST_DEADLINE_SECONDS
        response: HttpResponse | None = None
        try:
            with deadline(seconds) as bound:
                response = self.get_response(request)
        except DeadlineExceeded:
            pass
        if not bound.expired:
            assert response is not None  # noqa: S101 - only an expired deadline interrupts get_response
            close_failed_connections()
            return response
        close_interrupted_connections()
        if "psycopg" in bound.waiting_in:
            mark_database_unavailable()
        logger.warning(
            "request deadline of %s s exceeded, answering 503 to %s %s",
            seconds,
            request.method,
            request.path,
        )
        if response is not None and getattr(response, "deadline_exceeded", False):
            return response  # the view was interrupted: process_exception answered already
        return self._answer(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """The view itself was interrupted: answer here, sparing Django a 500 page and its error log."""
        if not isinstance(exception, DeadlineExceeded):
            return None
        return self._answer(request)

    @staticmethod
    def _answer(request: HttpRequest) -> HttpResponse:
        response = unavailable_response(
            request, gettext("A service this request needs did not answer in time; retry in a moment.")
        )
        response.deadline_exceeded = True
        return response


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
        return unavailable_response(
            request, gettext("The database is unavailable; nothing was saved. Retry in a moment.")
        )
