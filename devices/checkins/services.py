"""The write entry point of check-ins: a batch ingested in one transaction, run again when PostgreSQL
aborted it to break a deadlock. Every path (the API's single and bulk check-ins, Android Management API
Pub/Sub pushes, Headwind reports) calls :func:`checkins_ingest_retrying`; a single report is a batch of one.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence

from django.db import OperationalError, connection

from devices.checkins.ingest import ItemResult, Submission, checkins_ingest

# --- Transactions PostgreSQL aborted to resolve a conflict ------------------------------------------
# deadlock_detected and serialization_failure: PostgreSQL rolled the whole transaction back to let a
# concurrent one through, and running it again is the documented remedy.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
logger = logging.getLogger(__name__)
CHECKINS_INGEST_ATTEMPTS = 5


def is_retryable_conflict(error: BaseException) -> bool:
    """True for a deadlock or serialization failure (Django wraps psycopg's error: look at its cause too)."""
    for candidate in (error, error.__cause__):
        if getattr(candidate, "sqlstate", None) in _RETRYABLE_SQLSTATES:
            return True
    return False


def checkins_ingest_retrying(
    *, organisation_id: int, submissions: Sequence[Submission], can_enrol: bool
) -> list[ItemResult]:
    """:func:`devices.checkins.ingest.checkins_ingest`, run again when PostgreSQL aborted it to break a deadlock.

    A batch is one transaction: when PostgreSQL picks it as a deadlock's victim nothing of it was kept, so
    running it again from the start (after a short jittered pause, so the two batches do not meet again in
    step) stores it exactly once. Bounded: after ``CHECKINS_INGEST_ATTEMPTS`` the error goes to the client
    as a 503 (common.api.exceptions), asking it to retry. Inside an outer transaction (a test's) nothing is retried:
    only the outermost transaction can be rolled back and run again.
    """
    attempt = 1
    while True:
        try:
            return checkins_ingest(organisation_id=organisation_id, submissions=submissions, can_enrol=can_enrol)
        except OperationalError as error:
            if connection.in_atomic_block or attempt >= CHECKINS_INGEST_ATTEMPTS or not is_retryable_conflict(error):
                raise
            logger.warning(
                "check-in batch of %d reports aborted by the database (%s), attempt %d of %d: running it again",
                len(submissions),
                error.__cause__.__class__.__name__ if error.__cause__ else type(error).__name__,
                attempt,
                CHECKINS_INGEST_ATTEMPTS,
            )
            time.sleep(random.uniform(0, 0.05 * 2**attempt))  # noqa: S311 - jitter, not a secret
            attempt += 1
