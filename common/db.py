"""How long PostgreSQL lets one statement run, by the role of the process that opened the connection.

A web request must fail fast (a statement running for seconds holds a web worker that other requests wait
for); a sweep range or an import legitimately runs statements for minutes. Each entry point says which it is
(``config/wsgi.py``: web, ``config/celery.py``: worker) before its first query, and every PostgreSQL
connection it opens from then on asks the server for that ``statement_timeout``. Other processes (``migrate``,
``shell``, management commands) set none: a migration rewriting a big table must not be cut short.

How the value reaches the server (``DATABASE_STATEMENT_TIMEOUT_VIA``):

- ``options`` (default): in the connection's startup packet (libpq's ``options=-c statement_timeout=...``),
  applied by PostgreSQL before the first query, at no extra round trip.
- ``server``: FleetPatch sends nothing; the server or the pooler applies it. PgBouncer (before 1.23) refuses
  a startup ``options`` parameter, and a ``SET`` would leak between clients in transaction pooling mode: there,
  give the web and the workers database users of their own and ``ALTER ROLE ... SET statement_timeout``
  (docs/operations.md, "Bounded waits").
"""

from __future__ import annotations

import logging
import re
import time

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

ROLES = ("web", "worker")

_STATEMENT_TIMEOUT = re.compile(r"\s*-c\s*statement_timeout=\S+")


def statement_timeout_for(role: str) -> float:
    """Seconds one statement may run on the connections of a process playing ``role`` (0: no limit)."""
    if role not in ROLES:
        raise ValueError(f"unknown database role {role!r}, expected one of {ROLES}")
    return settings.DATABASE_STATEMENT_TIMEOUT if role == "web" else settings.DATABASE_WORKER_STATEMENT_TIMEOUT


def with_statement_timeout(options: str, seconds: float) -> str:
    """libpq ``options`` with ``statement_timeout`` set to ``seconds`` (replacing any one already there)."""
    kept = _STATEMENT_TIMEOUT.sub("", options or "").strip()
    if seconds <= 0:
        return kept
    return f"{kept} -c statement_timeout={round(seconds * 1000)}".strip()


def use_database_role(role: str) -> None:
    """Every PostgreSQL connection this process opens from now on runs statements with ``role``'s timeout.

    Called by an entry point before it serves anything; connections already open are closed, so none keeps the
    previous setting. A no-op for SQLite, and when the server applies the timeout itself (``server``)."""
    seconds = statement_timeout_for(role)
    if settings.DATABASE_STATEMENT_TIMEOUT_VIA != "options":
        return
    for alias in connections:
        settings_dict = connections.settings[alias]
        if settings_dict["ENGINE"] != "django.db.backends.postgresql":
            continue
        options = dict(settings_dict.get("OPTIONS") or {})
        options["options"] = with_statement_timeout(options.get("options", ""), seconds)
        if not options["options"]:
            del options["options"]
        # The same dict object is every thread's DatabaseWrapper.settings_dict: one assignment reaches them all.
        settings_dict["OPTIONS"] = options
        connections[alias].close()
    logger.debug("database role %s: statement_timeout %s s", role, seconds)


def close_interrupted_connections() -> None:
    """Closes this thread's database connections after a deadline interrupted a query.

    The connection is left mid-query (psycopg refuses the next command, "another command is already in
    progress") and its server may be frozen: closing sends a Terminate message without waiting for any answer,
    and the next request opens a fresh connection."""
    for connection in connections.all(initialized_only=True):
        try:
            connection.close()
        except Exception as error:  # noqa: BLE001 - the connection is discarded whatever went wrong
            logger.debug("closing the interrupted connection %s: %s", connection.alias, error)
            connection.connection = None


def close_failed_connections() -> None:
    """Closes this thread's database connections on which a query failed (the server went away, cancelled a
    statement past its timeout, aborted a transaction).

    Django would test each with a ``SELECT 1`` when the request ends, outside any deadline: on a server that
    froze meanwhile, that test waits forever and gunicorn kills the worker. Reconnecting at the next request is
    cheaper than that risk. Connections inside a transaction (a test's) are left to their owner."""
    for connection in connections.all(initialized_only=True):
        if connection.errors_occurred and not connection.in_atomic_block:
            connection.close()


# After a backoff, whether the database answers is asked with a query bounded this tightly (seconds), before
# any request waits on it again.
PROBE_SECONDS = 1.0

# Until when (time.monotonic()) this process answers 503 at once instead of waiting on the database again, and
# whether it must see the database answer before serving requests again.
_unavailable_until = 0.0
_suspect = False


def mark_database_unavailable() -> None:
    """The database gave no answer within a request's deadline, although its statement timeout is shorter:
    the server is frozen or unreachable. This process stops waiting on it (``database_unavailable``)."""
    global _unavailable_until, _suspect  # noqa: PLW0603 - one process-wide state, read on every request
    _unavailable_until = time.monotonic() + settings.DATABASE_FAILURE_BACKOFF_SECONDS
    _suspect = True
    logger.warning(
        "the database did not answer in time: 503 at once for %s s", settings.DATABASE_FAILURE_BACKOFF_SECONDS
    )


def database_unavailable() -> bool:
    """Whether a request should be answered 503 at once, without waiting on the database.

    For ``DATABASE_FAILURE_BACKOFF_SECONDS`` after ``mark_database_unavailable``, yes; then a ``SELECT 1``
    bounded by ``PROBE_SECONDS`` decides: answered, requests are served again; not, another backoff. A frozen
    database costs each process one request deadline, then a second at most per backoff, never a queue of
    requests each waiting the whole deadline."""
    global _suspect  # noqa: PLW0603
    if not _suspect:
        return False
    if time.monotonic() < _unavailable_until:
        return True
    if database_answers_within(PROBE_SECONDS):
        _suspect = False
        logger.warning("the database answers again")
        return False
    mark_database_unavailable()
    return True


def database_answers_within(seconds: float) -> bool:
    """Whether the default database answers ``SELECT 1`` (connecting if need be) within ``seconds``."""
    from django.db import DEFAULT_DB_ALIAS, DatabaseError

    from common.deadline import DeadlineExceeded, deadline

    try:
        with deadline(seconds), connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
    except (DeadlineExceeded, DatabaseError):
        close_interrupted_connections()
        return False
    return True
