"""Write operations of the email digests: dispatch, send (one message per recipient), test send, unsubscribe."""

from __future__ import annotations

import dataclasses
import datetime as dt
import smtplib
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext

from alerts import digests
from alerts.choices import DeliveryStatus, MessageStatus, UnsubscribeVia
from alerts.models import AlertSubscription, DigestDelivery, DigestMessage, Unsubscription
from common import bulk
from common.tasks import enqueue_on_commit
from fleet.models import Fleet

# Exactly once, the Healthchecks way:
#
# 1. The dispatcher inserts one DigestDelivery per (subscription, period) with INSERT ... ON CONFLICT DO NOTHING:
#    a second dispatcher, or the same one retried, inserts nothing and so enqueues nothing.
# 2. A worker claims a delivery with a conditional UPDATE (claimed/retrying -> sending), committed before it
#    talks to the SMTP server: of two workers holding the same task, one claims, the other does nothing.
# 3. It renders the digest once, inserts one DigestMessage per recipient (ON CONFLICT DO NOTHING: once per
#    (subscription, period, recipient)), and sends each recipient their own copy, claiming that message with a
#    conditional UPDATE (pending/retrying -> sending) committed before the SMTP server hears of it.
# 4. A refused message goes back to ``retrying`` with the reason; if any did, the delivery does too and the
#    task retries with backoff, sending only to those. Otherwise the delivery is ``sent`` (``partly_sent``
#    when some recipients used up DIGEST_MAX_ATTEMPTS).
# 5. A worker that dies between a claim and its outcome leaves the row in ``sending``. Whether the mail left is
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
    """Adds or changes a digest subscription; ``fleets`` (given: replaced; none: the whole organisation).

    Addresses added to its unsubscribed list are recorded as unsubscribed through the admin."""
    subscription.full_clean()
    before: list[str] = []
    if subscription.pk:
        stored = AlertSubscription.objects.filter(pk=subscription.pk).values_list("unsubscribed", flat=True)
        before = stored.first() or []
    subscription.save()
    known = {address.lower() for address in before}
    added = dict.fromkeys(address.lower() for address in subscription.unsubscribed if address.lower() not in known)
    Unsubscription.objects.bulk_create(
        [Unsubscription(subscription=subscription, address=address, via=UnsubscribeVia.ADMIN) for address in added]
    )
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
    # Their messages first (they are found through the delivery's status, which changes next).
    DigestMessage.objects.filter(
        delivery__status=DeliveryStatus.SENDING, delivery__claimed_at__lt=stale, status=MessageStatus.SENDING
    ).update(
        status=MessageStatus.FAILED,
        error=gettext("The worker was lost after claiming this message; not resent, it may have been delivered."),
    )
    DigestMessage.objects.filter(
        Q(delivery__status=DeliveryStatus.SENDING, delivery__claimed_at__lt=stale)
        | Q(delivery__status=DeliveryStatus.RETRYING, delivery__attempts__gte=settings.DIGEST_MAX_ATTEMPTS),
        status__in=[MessageStatus.PENDING, MessageStatus.RETRYING],
    ).update(status=MessageStatus.FAILED)
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
    """Where the digest starts: the end of the last digest sent (to all or some of its recipients) or skipped as
    empty, whose counts it compares with; for a first digest, the scheduled moment before its period (and
    nothing to compare with)."""
    previous = (
        DigestDelivery.objects.filter(
            subscription=subscription,
            status__in=[DeliveryStatus.SENT, DeliveryStatus.PARTLY_SENT, DeliveryStatus.SKIPPED_EMPTY],
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


def digest_render(
    subscription: AlertSubscription,
    *,
    window_start: dt.datetime,
    window_end: dt.datetime,
    previous_counts: dict | None,
) -> tuple[digests.Digest, digests.RenderedDigest]:
    """The digest of a window, rendered once for all its recipients (their copies only differ by a link)."""
    with translation.override(subscription.language):
        digest = digests.build_digest(
            subscription, window_start=window_start, window_end=window_end, previous_counts=previous_counts
        )
    return digest, digests.render_digest(digest)


def digest_email(
    rendered: digests.RenderedDigest, copy: digests.PersonalCopy, *, connection: Any = None
) -> EmailMultiAlternatives:
    """One recipient's email: text and HTML alternatives addressed to them alone, with their own unsubscribe link
    in the body and in the RFC 2369 / RFC 8058 headers (one-click unsubscribe from the mail client)."""
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=copy.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[copy.address],
        connection=connection,
        headers={
            "Content-Language": rendered.language,
            "Auto-Submitted": "auto-generated",
            "List-Unsubscribe": f"<{copy.unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    message.attach_alternative(copy.html, "text/html")
    return message


def _claim_message(message_id: int, now: dt.datetime) -> bool:
    return bool(
        DigestMessage.objects.filter(pk=message_id, status__in=[MessageStatus.PENDING, MessageStatus.RETRYING]).update(
            status=MessageStatus.SENDING, claimed_at=now, attempts=F("attempts") + 1
        )
    )


def _settle_message(message_id: int, *, status: str, **fields: Any) -> None:
    DigestMessage.objects.filter(pk=message_id, status=MessageStatus.SENDING).update(status=status, **fields)


def _send_messages(
    subscription: AlertSubscription, rendered: digests.RenderedDigest, messages: list[tuple[int, str]], now: dt.datetime
) -> str:
    """Sends each ``(message id, address)`` its own copy over one SMTP connection, each claimed first; returns
    the last refusal ("" when none). Per recipient: a claim, a replacement of two marks, an SMTP transaction and
    a settling UPDATE; nothing is rendered again."""
    last_error = ""
    connection = get_connection(fail_silently=False)
    try:
        for message_id, address in messages:
            if not _claim_message(message_id, now):
                continue  # another holder took it: never twice
            copy = rendered.personal(
                address=address,
                unsubscribe_url=digests.unsubscribe_url(subscription_id=subscription.pk, address=address),
            )
            try:
                connection.open()  # a no-op while the connection is up
                connection.send_messages([digest_email(rendered, copy, connection=connection)])
            except (smtplib.SMTPException, OSError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"[:2000]
                _settle_message(message_id, status=MessageStatus.RETRYING, error=last_error)
                if not isinstance(exc, smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused):
                    # The connection itself failed: the next recipient gets a fresh one.
                    _close_quietly(connection)
            else:
                _settle_message(message_id, status=MessageStatus.SENT, sent_at=timezone.now(), error="")
    finally:
        _close_quietly(connection)
    return last_error


def _close_quietly(connection: Any) -> None:
    try:
        connection.close()
    except (smtplib.SMTPException, OSError):
        pass


def digest_delivery_send(*, delivery_id: int, now: dt.datetime | None = None) -> str:
    """Sends one claimed period's digest, one message per recipient, each at most once; returns the delivery's
    new status.

    Returns without sending when another worker holds or settled the row. Raises DigestSendError (the row and
    the refused messages say ``retrying`` and why) when the SMTP server refused some and attempts remain; the
    retry sends only to those.
    """
    now = now or timezone.now()
    if not _claim(delivery_id, now):
        return gettext("not claimed")
    try:
        delivery = DigestDelivery.objects.select_related("subscription__organisation").get(pk=delivery_id)
        subscription = delivery.subscription
        window_start, previous_counts = digest_window_start(subscription, delivery.period)
        # Every recipient of a period reads the same window: a retry keeps the first attempt's end.
        window_end = delivery.window_end or now
        recipients = digests.digest_recipients(subscription)
        digest, rendered = digest_render(
            subscription, window_start=window_start, window_end=window_end, previous_counts=previous_counts
        )
    except Exception as exc:
        # Nothing has been sent yet: give the claim back so a retry (or the next dispatch) may take it.
        _settle(delivery_id, status=DeliveryStatus.RETRYING, error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    settled = {
        "window_start": window_start,
        "window_end": window_end,
        "counts": digest.counts,
        "subject": rendered.subject,
    }
    # (A retry whose first attempt reached somebody sends the rest, even if the digest now reads empty.)
    if (
        digest.is_empty
        and not subscription.send_when_empty
        and (delivery.attempts == 1 or not delivery.messages.exists())
    ):
        _settle(delivery_id, status=DeliveryStatus.SKIPPED_EMPTY, **settled)
        return DeliveryStatus.SKIPPED_EMPTY
    # One row per recipient, whatever the attempt: (delivery, address) is unique, so once per (subscription,
    # period, recipient). Who unsubscribed since an earlier attempt is not sent to.
    DigestMessage.objects.bulk_create(
        [DigestMessage(delivery_id=delivery_id, address=address) for address in recipients],
        ignore_conflicts=True,
        batch_size=1000,
    )
    waiting = DigestMessage.objects.filter(
        delivery_id=delivery_id, status__in=[MessageStatus.PENDING, MessageStatus.RETRYING]
    )
    waiting.exclude(address__in=recipients).update(status=MessageStatus.UNSUBSCRIBED)
    to_send = list(waiting.order_by("address").values_list("pk", "address"))
    last_error = _send_messages(subscription, rendered, to_send, now) if to_send else ""
    by_status = dict(
        DigestMessage.objects.filter(delivery_id=delivery_id).order_by().values_list("status").annotate(n=Count("pk"))
    )
    addressed = sorted(
        DigestMessage.objects.filter(delivery_id=delivery_id)
        .exclude(status=MessageStatus.UNSUBSCRIBED)
        .values_list("address", flat=True)
    )
    settled["recipients"] = addressed
    if by_status.get(MessageStatus.RETRYING):
        if delivery.attempts < settings.DIGEST_MAX_ATTEMPTS:
            _settle(delivery_id, status=DeliveryStatus.RETRYING, error=last_error, **settled)
            retry_in = settings.DIGEST_RETRY_BACKOFF * 2 ** (delivery.attempts - 1)
            raise DigestSendError(last_error, retry_in=retry_in)
        DigestMessage.objects.filter(delivery_id=delivery_id, status=MessageStatus.RETRYING).update(
            status=MessageStatus.FAILED
        )
        by_status[MessageStatus.FAILED] = by_status.get(MessageStatus.FAILED, 0) + by_status.pop(MessageStatus.RETRYING)
    sent = by_status.get(MessageStatus.SENT, 0)
    if not sent:
        error = last_error or gettext("No recipients.")
        _settle(delivery_id, status=DeliveryStatus.FAILED, error=error, **settled)
        return DeliveryStatus.FAILED
    status = DeliveryStatus.PARTLY_SENT if by_status.get(MessageStatus.FAILED) else DeliveryStatus.SENT
    if last_error:
        settled["error"] = last_error
    _settle(delivery_id, status=status, sent_at=timezone.now(), **settled)
    AlertSubscription.objects.filter(pk=subscription.pk).update(last_sent_period=delivery.period)
    return status


def _settle(delivery_id: int, *, status: str, **fields: Any) -> None:
    # Only the holder of the claim settles the row: a row given up as lost meanwhile stays failed.
    DigestDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.SENDING).update(status=status, **fields)


def digest_send_test(*, subscription: AlertSubscription, to: str, now: dt.datetime | None = None) -> str:
    """Sends the digest as it would read now to ``to`` alone (with ``to``'s own unsubscribe link), even when
    empty; no period is consumed and no delivery row is written. Returns the subject."""
    now = now or timezone.now()
    window_start, previous_counts = digest_window_start(subscription, subscription.latest_occurrence(now) or now)
    _, rendered = digest_render(
        subscription, window_start=window_start, window_end=now, previous_counts=previous_counts
    )
    address = to.lower()
    copy = rendered.personal(
        address=address, unsubscribe_url=digests.unsubscribe_url(subscription_id=subscription.pk, address=address)
    )
    digest_email(rendered, copy).send(fail_silently=False)
    return rendered.subject


@transaction.atomic
def subscription_unsubscribe(
    *,
    subscription_id: int,
    address: str,
    via: str,
    link_signed_at: dt.datetime | None = None,
    client_address: str | None = None,
    user_agent: str = "",
) -> tuple[AlertSubscription, bool]:
    """Stops ``address`` from receiving the subscription's digests: removed from the extra addresses, and
    remembered as unsubscribed so that a member with that address is skipped too. Idempotent: only a call that
    changed something is recorded (an Unsubscription row: who, when, which way, from which link). Returns the
    subscription and whether it changed."""
    subscription = AlertSubscription.objects.select_for_update().get(pk=subscription_id)
    address = address.lower()
    kept = [line for line in subscription.extra_addresses if line != address]
    changed = len(kept) != len(subscription.extra_addresses) or address not in subscription.unsubscribed
    if not changed:
        return subscription, False
    subscription.extra_recipients = "\n".join(kept)
    if address not in subscription.unsubscribed:
        subscription.unsubscribed = [*subscription.unsubscribed, address]
    subscription.save(update_fields=["extra_recipients", "unsubscribed"])
    Unsubscription.objects.create(
        subscription=subscription,
        address=address,
        via=via,
        link_signed_at=link_signed_at,
        client_address=client_address,
        user_agent=user_agent[:255],
    )
    return subscription, True
