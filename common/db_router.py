"""Reads off the primary: a read replica for the pages that read a lot and write nothing.

With ``DATABASE_REPLICA_URL`` set, Django has a second database alias, ``replica``. Nothing goes there by
default: a view opts in with :func:`replica_reads` (the dashboard, the exports, the API's list endpoints),
and even then a read goes to the primary when

1. the same request already wrote to that model's table (read-your-writes inside the request), or
2. the same client (API token or admin session) wrote anything in the last ``REPLICA_PIN_SECONDS``
   (read-your-writes across requests: a replica may lag the primary by a few seconds; the pin lives in
   the cache, shared by every web process when ``CACHE_URL`` is Redis).

Celery tasks, management commands and everything else read and write the primary. Migrations run on the
primary only: a streaming replica receives them from it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import models
from django.http import HttpRequest, HttpResponse

from common.cache import CACHE_UNAVAILABLE

logger = logging.getLogger(__name__)

PRIMARY = "default"
REPLICA = "replica"

# Per request (the middleware resets both): may reads go to the replica, and which tables were written.
_replica_allowed: ContextVar[bool] = ContextVar("replica_allowed", default=False)
_pinned: ContextVar[bool] = ContextVar("replica_pinned", default=False)
_written: ContextVar[frozenset[str]] = ContextVar("replica_written_tables", default=frozenset())

T = TypeVar("T")


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


@contextmanager
def replica_reads() -> Iterator[None]:
    """Inside this block, reads may be served by the replica (when one is configured and not pinned)."""
    token = _replica_allowed.set(True)
    try:
        yield
    finally:
        _replica_allowed.reset(token)


def reads_from_replica(view: Callable[..., T]) -> Callable[..., T]:
    """Decorator form of :func:`replica_reads` for a view function or method."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with replica_reads():
            return view(*args, **kwargs)

    return wrapper


def stream_from_replica(rows: Iterable[T]) -> Iterator[T]:
    """A streamed response is consumed after the view returned, and after the middleware reset the request's
    state: carry the request's pin into the iteration, and allow the replica for all of it."""
    pinned = _pinned.get()

    def generate() -> Iterator[T]:
        previous = (_replica_allowed.get(), _pinned.get())
        _replica_allowed.set(True)
        _pinned.set(pinned)
        try:
            yield from rows
        finally:
            _replica_allowed.set(previous[0])
            _pinned.set(previous[1])

    return generate()


class PrimaryReplicaRouter:
    """Sends opted-in reads to the replica, everything else to the primary (see the module docstring)."""

    def db_for_read(self, model: type[models.Model], **hints: Any) -> str:
        if (
            _replica_allowed.get()
            and not _pinned.get()
            and model._meta.db_table not in _written.get()
            and replica_configured()
        ):
            return REPLICA
        # Explicitly the primary, even for an instance that was read from the replica: Django would otherwise
        # follow the instance's own database for its related objects.
        return PRIMARY

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str:
        _written.set(_written.get() | {model._meta.db_table})
        return PRIMARY

    def allow_relation(self, obj1: models.Model, obj2: models.Model, **hints: Any) -> bool:
        return True  # the replica holds the same rows as the primary

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool:
        return db == PRIMARY


def _client_key(request: HttpRequest) -> str | None:
    """Who is asking, for pinning: the API token or the admin session, hashed (never stored as is)."""
    credential = request.META.get("HTTP_AUTHORIZATION") or request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if not credential:
        return None
    return "replica-pin:" + hashlib.sha256(credential.encode("utf-8", "replace")).hexdigest()


class ReplicaPinningMiddleware:
    """Resets the router's per-request state, and pins a client that wrote to the primary for a while."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # The state is reset around every request, replica or not: a view that failed half-way (an exception
        # past DRF's handler) must not leave its thread reading the replica.
        key = _client_key(request) if replica_configured() else None
        try:
            pinned = bool(key and cache.get(key))
        except CACHE_UNAVAILABLE as error:  # without the pins, read-your-writes means reading the primary
            logger.warning("replica pins unreadable, the cache is unreachable: %s", error)
            pinned = True
        tokens = (_pinned.set(pinned), _written.set(frozenset()), _replica_allowed.set(False))
        try:
            response = self.get_response(request)
            if key and _wrote_something(request):
                try:
                    cache.set(key, True, settings.REPLICA_PIN_SECONDS)
                except CACHE_UNAVAILABLE as error:
                    logger.warning("replica pin not recorded, the cache is unreachable: %s", error)
        finally:
            _pinned.reset(tokens[0])
            _written.reset(tokens[1])
            _replica_allowed.reset(tokens[2])
        return response


def _wrote_something(request: HttpRequest) -> bool:
    # A GET may write housekeeping rows (an API client's last use, a session): only a request meant to change
    # something pins its client, and only when it did write.
    return request.method not in ("GET", "HEAD", "OPTIONS") and bool(_written.get())
