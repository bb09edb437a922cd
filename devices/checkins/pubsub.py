"""Google Pub/Sub push messages of the Android Management API: acknowledged unless a retry can help.

Pub/Sub redelivers every message it gets no 2xx for, for days. So a message is answered 2xx whenever
redelivering it cannot change the outcome:

* a redelivery (a message id the organisation already received): nothing is stored again;
* a notification that carries no Device (COMMAND, USAGE_LOGS, ENTERPRISE_UPGRADE, anything unknown) or a
  ``test`` message without ``data``: ignored;
* a permanently invalid one (bad base64, not JSON, a Device that fails validation, one the ingestion refuses):
  recorded as a :class:`devices.models.RejectedMessage`, never lost;
* a Device (ENROLLMENT, STATUS_REPORT, the deprecated COMPLIANCE_REPORT): ingested as a check-in.

Only a transient failure (the database unavailable) escapes as an exception, a 503 that Pub/Sub retries. The
message id is written in the same transaction as the check-in or the rejection, so such a failure does not
mark the message as received.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
import time
from typing import Any

from django.db import OperationalError, connection, transaction
from django.utils import timezone

from common import bulk
from common.text import forbidden_character
from devices.checkins.ingest import ItemResult, ItemStatus, Submission, checkins_ingest
from devices.checkins.parsers import PayloadError, bounded_raw, decode_pubsub, parse_amapi
from devices.checkins.services import CHECKINS_INGEST_ATTEMPTS, is_retryable_conflict
from devices.choices import CheckInSource, RejectionKind
from devices.models import PubSubMessage, RejectedMessage

logger = logging.getLogger(__name__)

# Android Management API notification types whose message carries a Device resource.
DEVICE_NOTIFICATIONS = frozenset({"ENROLLMENT", "STATUS_REPORT", "COMPLIANCE_REPORT"})


class PushOutcome:
    CREATED = ItemStatus.CREATED
    DUPLICATE = ItemStatus.DUPLICATE
    IGNORED = "ignored"
    REJECTED = "rejected"
    REDELIVERED = "redelivered"


@dataclasses.dataclass
class PushResult:
    """What became of one pushed message; every outcome is acknowledged (2xx)."""

    status: str
    notification_type: str
    message_id: str
    item: ItemResult | None = None  # the check-in's result, for a Device that was ingested
    errors: dict[str, list[str]] | None = None  # why it was rejected
    rejected_message_id: int | None = None


def _text(value: Any, limit: int) -> str:
    # Pub/Sub's own metadata (message ids are digits): one holding a control character is not Google's, and is
    # treated as absent rather than stored (common.text's rule).
    return value[:limit] if isinstance(value, str) and forbidden_character(value) is None else ""


def pubsub_message_ingest(
    *, organisation_id: int, api_client_id: int | None, envelope: dict, can_enrol: bool
) -> PushResult:
    """Applies one Pub/Sub push envelope ``{"message": {...}, "subscription": ...}`` for an organisation.

    Run again (as :func:`devices.checkins.services.checkins_ingest_retrying` does) when PostgreSQL aborted
    it to break a deadlock; any other database error goes to the caller, nothing of it stored.
    """
    attempt = 1
    while True:
        try:
            return _ingest_once(
                organisation_id=organisation_id, api_client_id=api_client_id, envelope=envelope, can_enrol=can_enrol
            )
        except OperationalError as error:
            if connection.in_atomic_block or attempt >= CHECKINS_INGEST_ATTEMPTS or not is_retryable_conflict(error):
                raise
            logger.warning("Pub/Sub message aborted by the database, attempt %d: running it again", attempt)
            time.sleep(random.uniform(0, 0.05 * 2**attempt))  # noqa: S311 - jitter, not a secret
            attempt += 1


@transaction.atomic
def _ingest_once(*, organisation_id: int, api_client_id: int | None, envelope: dict, can_enrol: bool) -> PushResult:
    message = envelope.get("message") if isinstance(envelope.get("message"), dict) else {}
    attributes = message.get("attributes") if isinstance(message.get("attributes"), dict) else {}
    kind = _text(attributes.get("notificationType"), 50)
    message_id = _text(message.get("messageId") or message.get("message_id"), 100)
    result = PushResult(status=PushOutcome.IGNORED, notification_type=kind, message_id=message_id)
    if message_id and not _first_delivery(organisation_id, message_id):
        result.status = PushOutcome.REDELIVERED
        return result
    # A "test" notification has no data; other types without a Device are acknowledged unread.
    if "data" not in message or (kind and kind not in DEVICE_NOTIFICATIONS):
        return result

    def record(kind_of_error: str, errors: dict[str, list[str]], payload: Any) -> RejectedMessage:
        return RejectedMessage.objects.create(
            organisation_id=organisation_id,
            api_client_id=api_client_id,
            source=CheckInSource.AMAPI,
            notification_type=kind,
            message_id=message_id,
            kind=kind_of_error,
            errors=errors,
            raw=bounded_raw(payload),
        )

    def reject(kind_of_error: str, errors: dict[str, list[str]], payload: Any) -> PushResult:
        rejected = record(kind_of_error, errors, payload)
        result.status, result.errors, result.rejected_message_id = PushOutcome.REJECTED, errors, rejected.pk
        return result

    try:
        device = decode_pubsub(envelope)
    except PayloadError as error:
        return reject(RejectionKind.PAYLOAD, error.errors, envelope)
    published_at = message.get("publishTime") or message.get("publish_time")
    parsed = parse_amapi(device, published_at=published_at if isinstance(published_at, str) else None)
    if parsed.errors is not None:
        return reject(RejectionKind.DEVICE, parsed.errors, device)
    (item,) = checkins_ingest(
        organisation_id=organisation_id,
        submissions=[Submission(parsed.identity, parsed.report)],
        can_enrol=can_enrol,
    )
    if item.status == ItemStatus.ERROR:
        return reject(RejectionKind.INGEST, item.errors or {}, device)
    # Nobody reads Pub/Sub's answers: what the report lost or left in doubt (a junk IMEI dropped, an IMEI that
    # contradicts its device) is recorded beside the rejections. An unknown model is not: the device keeps
    # the name it reported (Device.reported_model), and every report of it would repeat the same warning.
    doubts = {field: reasons for field, reasons in (item.warnings or {}).items() if field != "model"}
    if doubts:
        record(RejectionKind.WARNING, doubts, device)
    result.status, result.item = item.status, item
    return result


def _first_delivery(organisation_id: int, message_id: str) -> bool:
    """Records the message id; False when the organisation had received it already (one statement)."""
    inserted = bulk.insert_returning(
        PubSubMessage,
        [{"organisation": organisation_id, "message_id": message_id, "received_at": timezone.now()}],
        conflict="(organisation_id, message_id) DO NOTHING",
        returning=("id",),
    )
    return bool(inserted)


# --- Retention --------------------------------------------------------------------------------------
def _prune(model: type, *, older_than: dt.datetime, batch_size: int) -> int:
    """Deletes rows received before ``older_than``, ``batch_size`` at a time, each batch its own transaction."""
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                model.objects.filter(received_at__lt=older_than)
                .order_by("received_at")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                return deleted
            count, _ = model.objects.filter(pk__in=ids).delete()
            deleted += count


def rejected_messages_prune(*, older_than: dt.datetime, batch_size: int) -> int:
    """Deletes the rejected messages received before ``older_than``; returns how many."""
    return _prune(RejectedMessage, older_than=older_than, batch_size=batch_size)


def pubsub_messages_prune(*, older_than: dt.datetime, batch_size: int) -> int:
    """Forgets the message ids received before ``older_than`` (Pub/Sub stops redelivering after 7 days)."""
    return _prune(PubSubMessage, older_than=older_than, batch_size=batch_size)
