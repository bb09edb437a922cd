"""Write operations of the email digests: dispatch, send, test send, unsubscribe."""

from __future__ import annotations

import dataclasses
import datetime as dt
import smtplib
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext

from alerts import digests
from alerts.choices import DeliveryStatus
from alerts.models import AlertSubscription, DigestDelivery
from common import bulk
from common.tasks import enqueue_on_commit
from fleet.models import Fleet

# Exactly once, the Healthchecks way:
#
# 1. The dispatcher inserts one DigestDelivery per (subscription, period) with INSERT ... ON CONFLICT DO NOTHING:
#    a second dispatcher, or the same one retried, inserts nothing and so enqueues nothing.
# 2. A worker claims a delivery with a conditional UPDATE (claimed/retrying -> sending), committed before it
#    talks to the SMTP server: of two workers holding the same task, one claims, the other does nothing.
# 3. SMTP refused: the row goes back to ``retrying`` with the reason, and the task retries with backoff.
#    Accepted: the row is marked ``sent``.
# 4. A worker that dies between its claim and step 3 leaves the row in ``sending``. Whether the mail left is
#    unknown, so it is never resent: after DIGEST_STALE_CLAIM_MINUTES the dispatcher marks it ``failed``
#    ("lost after claim"). At most once after the claim; the next digest starts where the last sent one
#    ended, so nothing it would have said is lost, only later.


class DigestSendError(Exception):
    """The SMTP server refused a digest; the task should retry in ``retry_in`` seconds."""

    def __init__(self, message: str, *, retry_in: int) -> None:
        super().__init__(message)
        self.retry_in = retry_in


@dataclasses.dataclass
class DispatchResult:
    """What one dispatch did: deliveries it inserted (one per due subscription), claimed ones it enqueued again
    (their first enqueue was lost), and claims it gave up as lost."""

    created: list[int] = dataclasses.field(default_factory=list)
    requeued: list[int] = dataclasses.field(default_factory=list)
    lost: int = 0


@transaction.atomic
def subscription_save(*, subscription: AlertSubscription, fleets: Iterable[Fleet] | None = None) -> AlertSubscription:
    """Adds or changes a digest subscription; ``fleets`` (given: replaced; none: the whole organisation)."""
    subscription.full_clean()
    subscription.save()
    if fleets is not None:
        subscription.fleets.set(fleets)
    return subscription


def digest_period(subscription: AlertSubscription, *, now: dt.datetime, due_now: bool) -> dt.datetime | None:
    latest = subscription.latest_occurrence(now)
    if not due_now:
        # A subscription created after its latest send moment waits for the next one.
        return latest if latest is not None and latest >= subscription.created_at else None
    # "Due now" sends the period in progress ahead of time: the scheduled run then finds it taken.
    upcoming = subscription.latest_occurrence(now + dt.timedelta(days=7 if subscription.frequency != "daily" else 1))
    candidates = [moment for moment in (latest, upcoming) if moment is not None and moment > now]
    return min(candidates) if candidates else (latest or now)


def _insert_deliveries(rows: list[tuple[int, dt.datetime]], now: dt.datetime) -> list[int]:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id: the ids of the rows this call created, and only those.

    Values are prepared as the ORM would store them (:func:`common.bulk.insert_returning`): SQLite compares
    datetimes as text, so a differently spelled period would escape the unique key.
    """
    created: list[int] = []
    for start in range(0, len(rows), 1000):  # bounded statements, well under SQLite's parameter limit
        batch = [
            {
                "subscription": subscription_id,
                "period": period,
                "status": DeliveryStatus.CLAIMED.value,
                "attempts": 0,
                "created_at": now,
                "recipients": [],
                "subject": "",
                "error": "",
                "counts": {},
            }
            for subscription_id, period in rows[start : start + 1000]
        ]
        returned = bulk.insert_returning(
            DigestDelivery, batch, conflict="(subscription_id, period) DO NOTHING", returning=("id",)
        )
        created += [row["id"] for row in returned]
    return sorted(created)


def _enqueue_sends(delivery_ids: list[int]) -> None:
    from alerts.tasks import send_digest

    for delivery_id in delivery_ids:
        enqueue_on_commit(send_digest, delivery_id, catch_up="the dispatcher, after DIGEST_STALE_CLAIM_MINUTES,")


@transaction.atomic
def digests_dispatch(
    *,
    now: dt.datetime | None = None,
    subscription_ids: Iterable[int] | None = None,
    due_now: bool = False,
    enqueue: bool = True,
) -> DispatchResult:
    """Claims the current period of every due subscription and enqueues its send after commit.

    1. Settles lost claims: rows ``sending`` for longer than DIGEST_STALE_CLAIM_MINUTES become ``failed``,
       and so do rows ``retrying`` that used up DIGEST_MAX_ATTEMPTS (their last error is kept).
    2. For each active subscription, its latest scheduled moment (``due_now``: the period in progress) is its
       period; one INSERT ... ON CONFLICT DO NOTHING creates the missing rows and returns their ids.
    3. Enqueues ``send_digest`` for those, and again for rows still ``claimed`` or ``retrying`` after
       DIGEST_STALE_CLAIM_MINUTES (their message was lost with a broker): the claim makes a double enqueue
       harmless.
    """
    now = now or timezone.now()
    stale = now - dt.timedelta(minutes=settings.DIGEST_STALE_CLAIM_MINUTES)
    result = DispatchResult()
    result.lost = DigestDelivery.objects.filter(status=DeliveryStatus.SENDING, claimed_at__lt=stale).update(
        status=DeliveryStatus.FAILED,
        error=gettext("The worker was lost after claiming this digest; not resent, it may have been delivered."),
    )
    result.lost += DigestDelivery.objects.filter(
        status=DeliveryStatus.RETRYING, attempts__gte=settings.DIGEST_MAX_ATTEMPTS
    ).update(status=DeliveryStatus.FAILED)
    subscriptions = AlertSubscription.objects.filter(is_active=True).order_by("pk")
    if subscription_ids is not None:
        subscriptions = subscriptions.filter(pk__in=list(subscription_ids))
    rows = []
    for subscription in subscriptions:
        period = digest_period(subscription, now=now, due_now=due_now)
        if period is not None:
            rows.append((subscription.pk, period))
    result.created = _insert_deliveries(rows, now)
    forgotten = DigestDelivery.objects.filter(
        status__in=[DeliveryStatus.CLAIMED, DeliveryStatus.RETRYING], created_at__lt=stale
    )
    if subscription_ids is not None:
        forgotten = forgotten.filter(subscription_id__in=list(subscription_ids))
    result.requeued = sorted(forgotten.values_list("pk", flat=True))
    if enqueue:
        _enqueue_sends(result.created + result.requeued)
    return result


def _claim(delivery_id: int, now: dt.datetime) -> bool:
    return bool(
        DigestDelivery.objects.filter(
            pk=delivery_id,
            status__in=[DeliveryStatus.CLAIMED, DeliveryStatus.RETRYING],
            attempts__lt=settings.DIGEST_MAX_ATTEMPTS,
        ).update(status=DeliveryStatus.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    )


def digest_window_start(subscription: AlertSubscription, period: dt.datetime) -> tuple[dt.datetime, dict | None]:
    """Where the digest starts: the end of the last digest sent (or skipped as empty), whose counts it compares
    with; for a first digest, the scheduled moment before its period (and nothing to compare with)."""
    previous = (
        DigestDelivery.objects.filter(
            subscription=subscription,
            status__in=[DeliveryStatus.SENT, DeliveryStatus.SKIPPED_EMPTY],
            window_end__isnull=False,
        )
        .order_by("-window_end")
        .values("window_end", "counts")
        .first()
    )
    if previous is not None:
        return previous["window_end"], previous["counts"]
    before = subscription.latest_occurrence(period - dt.timedelta(seconds=1))
    return before or period - dt.timedelta(days=1), None


def digest_message(
    subscription: AlertSubscription,
    *,
    window_start: dt.datetime,
    window_end: dt.datetime,
    previous_counts: dict | None,
    recipients: list[str],
) -> tuple[digests.Digest, digests.RenderedDigest, EmailMultiAlternatives]:
    """The digest of a window and its email (text and HTML alternatives, one message to every recipient)."""
    with translation.override(subscription.language):
        digest = digests.build_digest(
            subscription, window_start=window_start, window_end=window_end, previous_counts=previous_counts
        )
    rendered = digests.render_digest(digest, recipients=recipients)
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        headers={"Content-Language": rendered.language, "Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(rendered.html, "text/html")
    return digest, rendered, message


def digest_delivery_send(*, delivery_id: int, now: dt.datetime | None = None) -> str:
    """Sends one claimed period's digest, at most once; returns the delivery's new status.

    Returns without sending when another worker holds or settled the row. Raises DigestSendError (the row
    says ``retrying`` and why) when the SMTP server refused and attempts remain.
    """
    now = now or timezone.now()
    if not _claim(delivery_id, now):
        return gettext("not claimed")
    try:
        delivery = DigestDelivery.objects.select_related("subscription__organisation").get(pk=delivery_id)
        subscription = delivery.subscription
        window_start, previous_counts = digest_window_start(subscription, delivery.period)
        recipients = digests.digest_recipients(subscription)
        digest, rendered, message = digest_message(
            subscription,
            window_start=window_start,
            window_end=now,
            previous_counts=previous_counts,
            recipients=recipients,
        )
    except Exception as exc:
        # Nothing has been sent yet: give the claim back so a retry (or the next dispatch) may take it.
        _settle(delivery_id, status=DeliveryStatus.RETRYING, error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    settled = {"window_start": window_start, "window_end": now, "counts": digest.counts, "subject": rendered.subject}
    if digest.is_empty and not subscription.send_when_empty:
        _settle(delivery_id, status=DeliveryStatus.SKIPPED_EMPTY, **settled)
        return DeliveryStatus.SKIPPED_EMPTY
    if not recipients:
        _settle(delivery_id, status=DeliveryStatus.FAILED, error=gettext("No recipients."), **settled)
        return DeliveryStatus.FAILED
    try:
        message.send(fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}"[:2000]
        attempts = delivery.attempts
        if attempts >= settings.DIGEST_MAX_ATTEMPTS:
            _settle(delivery_id, status=DeliveryStatus.FAILED, error=reason, recipients=recipients, **settled)
            return DeliveryStatus.FAILED
        _settle(delivery_id, status=DeliveryStatus.RETRYING, error=reason, recipients=recipients, **settled)
        raise DigestSendError(reason, retry_in=settings.DIGEST_RETRY_BACKOFF * 2 ** (attempts - 1)) from exc
    _settle(delivery_id, status=DeliveryStatus.SENT, sent_at=timezone.now(), recipients=recipients, **settled)
    AlertSubscription.objects.filter(pk=subscription.pk).update(last_sent_period=delivery.period)
    return DeliveryStatus.SENT


def _settle(delivery_id: int, *, status: str, **fields: Any) -> None:
    # Only the holder of the claim settles the row: a row given up as lost meanwhile stays failed.
    DigestDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.SENDING).update(status=status, **fields)


def digest_send_test(*, subscription: AlertSubscription, to: str, now: dt.datetime | None = None) -> str:
    """Sends the digest as it would read now to ``to`` alone, even when empty; no period is consumed and no
    delivery row is written. Returns the subject."""
    now = now or timezone.now()
    window_start, previous_counts = digest_window_start(subscription, subscription.latest_occurrence(now) or now)
    _, rendered, message = digest_message(
        subscription, window_start=window_start, window_end=now, previous_counts=previous_counts, recipients=[to]
    )
    message.send(fail_silently=False)
    return rendered.subject


@transaction.atomic
def subscription_unsubscribe(*, subscription_id: int, address: str) -> AlertSubscription:
    """Stops ``address`` from receiving the subscription's digests: removed from the extra addresses, and
    remembered as unsubscribed so that a member with that address is skipped too. Idempotent."""
    subscription = AlertSubscription.objects.select_for_update().get(pk=subscription_id)
    address = address.lower()
    kept = [line for line in subscription.extra_addresses if line != address]
    subscription.extra_recipients = "\n".join(kept)
    if address not in subscription.unsubscribed:
        subscription.unsubscribed = [*subscription.unsubscribed, address]
    subscription.save(update_fields=["extra_recipients", "unsubscribed"])
    return subscription
