"""Mail that only its recipient controls: one message per recipient, each with its own signed, expiring link;
one-click unsubscribe (RFC 8058); every unsubscribe recorded; the admin's Preview carrying nobody's link."""

from __future__ import annotations

import datetime as dt
import re
import smtplib

import pytest
import time_machine
from django.core import mail, signing
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.test import Client
from django.urls import reverse

from alerts import digests
from alerts.choices import DeliveryStatus, MessageStatus, UnsubscribeVia
from alerts.models import DigestDelivery, DigestMessage, Unsubscription
from alerts.services import digest_delivery_send, digests_dispatch, subscription_save, subscription_unsubscribe
from fleet.choices import Role
from tests.alerts.test_digests import IN_WINDOW, WINTER_SEND, newly, subscribe
from tests.factories import DeviceFactory, MembershipFactory, UserFactory

ONE_CLICK = {"List-Unsubscribe": "One-Click"}  # the body RFC 8058 says a mail client POSTs


def link_path(subscription, address: str) -> str:
    token = digests.unsubscribe_token(subscription_id=subscription.pk, address=address)
    return reverse("alerts:unsubscribe", args=[subscription.pk, token])


@pytest.fixture
def news(org_a):
    """One device newly behind in organisation A: every digest of the window has something to say."""
    newly(DeviceFactory(organisation=org_a, serial="A-NEWS", compliance_status="behind"), "behind", IN_WINDOW)


@pytest.fixture
def csrf_client() -> Client:
    """A client that enforces CSRF like a browser-less mail provider meets it: no cookie, no token."""
    return Client(enforce_csrf_checks=True)


# --- The links ---------------------------------------------------------------------------------------------------


def test_a_get_asks_for_confirmation_and_unsubscribes_nobody(client, org_a):
    subscription = subscribe(org_a, extra_recipients="ops@example.org")
    page = client.get(link_path(subscription, "ops@example.org"))

    assert page.status_code == 200
    assert "ops@example.org" in page.content.decode() and '<form method="post">' in page.content.decode()
    subscription.refresh_from_db()
    assert digests.digest_recipients(subscription) == ["ops@example.org"]
    assert not Unsubscription.objects.exists()


def test_the_page_button_unsubscribes_without_login_or_csrf_and_is_recorded(csrf_client, org_a):
    subscription = subscribe(org_a, extra_recipients="ops@example.org\nsoc@example.org")
    with time_machine.travel(WINTER_SEND, tick=False):
        path = link_path(subscription, "ops@example.org")
    with time_machine.travel(WINTER_SEND + dt.timedelta(days=3), tick=False):
        response = csrf_client.post(path, headers={"user-agent": "Mozilla/5.0 (X11) Firefox/133.0"})

    assert response.status_code == 200
    assert "ops@example.org will no longer receive" in response.content.decode()
    subscription.refresh_from_db()
    assert digests.digest_recipients(subscription) == ["soc@example.org"]
    record = Unsubscription.objects.get()
    assert (record.subscription, record.address, record.via) == (subscription, "ops@example.org", UnsubscribeVia.PAGE)
    assert record.at == WINTER_SEND + dt.timedelta(days=3)
    assert record.link_signed_at == WINTER_SEND
    assert (record.client_address, record.user_agent) == ("127.0.0.1", "Mozilla/5.0 (X11) Firefox/133.0")


def test_the_one_click_post_of_rfc_8058_unsubscribes_a_member_and_is_recorded_as_one_click(csrf_client, org_a):
    MembershipFactory(
        organisation=org_a, role=Role.MANAGER, user=UserFactory(username="boss", email="boss@example.org")
    )
    subscription = subscribe(org_a, extra_recipients="ops@example.org")

    response = csrf_client.post(
        link_path(subscription, "boss@example.org"), ONE_CLICK, headers={"user-agent": "Google-One-Click"}
    )

    assert response.status_code == 200
    subscription.refresh_from_db()
    assert digests.digest_recipients(subscription) == ["ops@example.org"]
    assert list(Unsubscription.objects.values_list("address", "via", "user_agent")) == [
        ("boss@example.org", UnsubscribeVia.ONE_CLICK, "Google-One-Click")
    ]


def test_unsubscribing_twice_is_harmless_and_recorded_once(client, org_a):
    subscription = subscribe(org_a)
    path = link_path(subscription, "ops@example.org")
    client.post(path, ONE_CLICK)
    client.post(path)
    _subscription, changed = subscription_unsubscribe(
        subscription_id=subscription.pk, address="OPS@example.org", via=UnsubscribeVia.PAGE
    )

    assert not changed
    subscription.refresh_from_db()
    assert (subscription.unsubscribed, subscription.extra_addresses) == (["ops@example.org"], [])
    assert Unsubscription.objects.count() == 1


def test_a_link_of_another_subscription_is_refused_and_changes_nothing(client, org_a, org_b):
    mine = subscribe(org_a, extra_recipients="ops@example.org")
    theirs = subscribe(org_b, extra_recipients="ops@example.org")
    # A genuine token for "mine", presented at "theirs": it must not silence the other subscription.
    token = digests.unsubscribe_token(subscription_id=mine.pk, address="ops@example.org")

    for method in (client.get, client.post):
        response = method(reverse("alerts:unsubscribe", args=[theirs.pk, token]), ONE_CLICK)
        assert response.status_code == 400
        assert "belongs to another subscription" in response.content.decode()
    theirs.refresh_from_db()
    mine.refresh_from_db()
    assert theirs.extra_addresses == ["ops@example.org"] and mine.extra_addresses == ["ops@example.org"]
    assert not Unsubscription.objects.exists()


def test_an_expired_link_is_refused_with_a_page_saying_how_long_links_last(client, org_a, settings):
    settings.DIGEST_UNSUBSCRIBE_MAX_AGE_DAYS = 60
    subscription = subscribe(org_a)
    with time_machine.travel(WINTER_SEND, tick=False):
        path = link_path(subscription, "ops@example.org")
    with time_machine.travel(WINTER_SEND + dt.timedelta(days=59), tick=False):
        assert client.get(path).status_code == 200  # still valid the day before
    with time_machine.travel(WINTER_SEND + dt.timedelta(days=60, seconds=1), tick=False):
        response = client.post(path, ONE_CLICK)

    assert response.status_code == 410
    assert "expired" in response.content.decode() and "60 days" in response.content.decode()
    subscription.refresh_from_db()
    assert subscription.extra_addresses == ["ops@example.org"]
    assert not Unsubscription.objects.exists()


def test_an_altered_or_forged_link_is_refused(client, org_a):
    subscription = subscribe(org_a)
    token = digests.unsubscribe_token(subscription_id=subscription.pk, address="ops@example.org")
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    forged = signing.dumps({"s": subscription.pk, "a": "ops@example.org"}, salt="another purpose", compress=True)

    for bad in (tampered, forged):
        assert client.post(reverse("alerts:unsubscribe", args=[subscription.pk, bad]), ONE_CLICK).status_code == 400
    assert client.post(reverse("alerts:unsubscribe", args=[999999, token]), ONE_CLICK).status_code == 400
    subscription.refresh_from_db()
    assert subscription.extra_addresses == ["ops@example.org"]


def test_a_link_of_a_digest_sent_before_per_recipient_messages_is_refused_with_how_to_unsubscribe(client, org_a):
    # Old digests carried every recipient's link in one message: holding one proves nothing about who you are.
    subscription = subscribe(org_a, extra_recipients="ops@example.org")
    token = signing.dumps(
        {"s": subscription.pk, "a": "ops@example.org"}, salt=digests.LEGACY_UNSUBSCRIBE_SALT, compress=True
    )

    for method in (client.get, client.post):
        response = method(f"/alerts/unsubscribe/{token}/")
        assert response.status_code == 410
        assert "latest digest" in response.content.decode()
    subscription.refresh_from_db()
    assert subscription.extra_addresses == ["ops@example.org"]


def test_the_pages_speak_the_subscription_s_language(client, org_a):
    subscription = subscribe(org_a, language="fr")
    page = client.get(link_path(subscription, "ops@example.org")).content.decode()
    assert "Se désabonner" in page and 'lang="fr"' in page
    expired = client.get(
        reverse("alerts:unsubscribe", args=[subscription.pk, "x"]), headers={"accept-language": "fr"}
    ).content.decode()
    assert "lien de désabonnement" in expired


# --- One message per recipient, once ------------------------------------------------------------------------


class RefusingBackend(LocmemBackend):
    """A server that refuses some recipients like a greylisting or a full mailbox (451 at DATA): the first
    ``refuse_first`` messages to each address of ``refused``, or every one when ``refuse_first`` is None."""

    refused: set[str] = set()
    refuse_first: int | None = 1
    seen: dict[str, int] = {}

    def send_messages(self, messages):
        for message in messages:
            (address,) = message.to
            RefusingBackend.seen[address] = RefusingBackend.seen.get(address, 0) + 1
            limit = RefusingBackend.refuse_first
            if address in RefusingBackend.refused and (limit is None or RefusingBackend.seen[address] <= limit):
                raise smtplib.SMTPDataError(451, b"4.2.2 Mailbox full, try again later")
        return super().send_messages(messages)


@pytest.fixture
def refusing(settings):
    settings.EMAIL_BACKEND = "tests.alerts.test_unsubscribe.RefusingBackend"
    RefusingBackend.refused, RefusingBackend.refuse_first, RefusingBackend.seen = set(), 1, {}
    return RefusingBackend


@time_machine.travel(WINTER_SEND, tick=False)
def test_a_recipient_refused_then_accepted_gets_one_message_and_the_others_are_not_sent_twice(
    org_a, news, refusing, django_capture_on_commit_callbacks
):
    refusing.refused = {"ops@example.org"}
    subscription = subscribe(org_a, extra_recipients="audit@example.org\nops@example.org\nsoc@example.org")
    with django_capture_on_commit_callbacks(execute=True):
        digests_dispatch()  # eager tasks: Celery runs the retry inline

    assert sorted(message.to[0] for message in mail.outbox) == [
        "audit@example.org",
        "ops@example.org",
        "soc@example.org",
    ]
    assert refusing.seen == {"audit@example.org": 1, "ops@example.org": 2, "soc@example.org": 1}
    delivery = subscription.deliveries.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 2)
    assert dict(delivery.messages.values_list("address", "attempts")) == {
        "audit@example.org": 1,
        "ops@example.org": 2,
        "soc@example.org": 1,
    }
    assert set(delivery.messages.values_list("status", flat=True)) == {MessageStatus.SENT}

    # Beat again, a redelivered task: nothing more for anybody.
    with django_capture_on_commit_callbacks(execute=True):
        assert digests_dispatch().created == []
    assert digest_delivery_send(delivery_id=delivery.pk) == "not claimed"
    assert len(mail.outbox) == 3


@time_machine.travel(WINTER_SEND, tick=False)
def test_a_recipient_refused_every_time_leaves_the_period_partly_sent_with_the_reason(
    org_a, news, refusing, settings, django_capture_on_commit_callbacks
):
    settings.DIGEST_MAX_ATTEMPTS = 3
    refusing.refused, refusing.refuse_first = {"full@example.org"}, None
    subscription = subscribe(org_a, extra_recipients="full@example.org\nops@example.org")
    with django_capture_on_commit_callbacks(execute=True):
        digests_dispatch()

    assert [message.to for message in mail.outbox] == [["ops@example.org"]]
    delivery = subscription.deliveries.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PARTLY_SENT, 3)
    assert "Mailbox full" in delivery.error
    failed = delivery.messages.get(address="full@example.org")
    assert (failed.status, failed.attempts) == (MessageStatus.FAILED, 3)
    assert "451" in failed.error
    # Partly sent counts as sent for the next digest's window: it starts where this one ended.
    subscription.refresh_from_db()
    assert subscription.last_sent_period == WINTER_SEND


@time_machine.travel(WINTER_SEND, tick=False)
def test_who_unsubscribes_between_two_attempts_is_not_sent_the_retry(org_a, news, refusing):
    refusing.refused = {"ops@example.org"}
    subscription = subscribe(org_a, extra_recipients="ops@example.org\nsoc@example.org")
    delivery_id = digests_dispatch(enqueue=False).created[0]
    with pytest.raises(Exception, match="Mailbox full"):
        digest_delivery_send(delivery_id=delivery_id)
    subscription_unsubscribe(subscription_id=subscription.pk, address="ops@example.org", via=UnsubscribeVia.PAGE)

    assert digest_delivery_send(delivery_id=delivery_id) == DeliveryStatus.SENT
    assert [message.to for message in mail.outbox] == [["soc@example.org"]]
    assert DigestMessage.objects.get(address="ops@example.org").status == MessageStatus.UNSUBSCRIBED


def test_a_message_lost_with_its_worker_is_never_resent_but_marked_failed(org_a, news, settings):
    settings.DIGEST_STALE_CLAIM_MINUTES = 30
    subscription = subscribe(org_a, extra_recipients="ops@example.org\nsoc@example.org")
    delivery_id = digests_dispatch(now=WINTER_SEND, enqueue=False).created[0]
    # A worker claimed the period and one message, then died.
    DigestDelivery.objects.filter(pk=delivery_id).update(
        status=DeliveryStatus.SENDING, claimed_at=WINTER_SEND, attempts=1
    )
    DigestMessage.objects.create(delivery_id=delivery_id, address="ops@example.org", status=MessageStatus.SENDING)
    DigestMessage.objects.create(delivery_id=delivery_id, address="soc@example.org")

    assert digests_dispatch(now=WINTER_SEND + dt.timedelta(minutes=31), enqueue=False).lost == 1
    assert dict(subscription.deliveries.get().messages.values_list("address", "status")) == {
        "ops@example.org": MessageStatus.FAILED,
        "soc@example.org": MessageStatus.FAILED,
    }
    assert "lost" in DigestMessage.objects.get(address="ops@example.org").error
    assert mail.outbox == []


def test_sending_costs_a_constant_number_of_queries_per_recipient(org_a, news, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for(count: int) -> int:
        addresses = "\n".join(f"r{index}@example.org" for index in range(count))
        subscription = subscribe(org_a, name=f"Digest to {count}", extra_recipients=addresses)
        delivery_id = digests_dispatch(now=WINTER_SEND, subscription_ids=[subscription.pk], enqueue=False).created[0]
        with CaptureQueriesContext(connection) as captured:
            assert digest_delivery_send(delivery_id=delivery_id, now=WINTER_SEND) == DeliveryStatus.SENT
        return len(captured)

    one, two, five = queries_for(1), queries_for(2), queries_for(5)
    per_recipient = two - one
    assert per_recipient <= 2  # its claim and its settling; the digest is built and rendered once
    assert five - one == 4 * per_recipient
    assert len(mail.outbox) == 8


# --- The admin: the Preview and the record ------------------------------------------------------------------


def test_the_preview_shows_a_neutral_link_that_unsubscribes_nobody(client, org_a, news, viewer_a):
    MembershipFactory(
        organisation=org_a, role=Role.MANAGER, user=UserFactory(username="boss", email="boss@example.org")
    )
    subscription = subscribe(org_a, extra_recipients="ops@example.org")
    client.force_login(viewer_a)
    html = client.get(reverse("admin:alerts_alertsubscription_preview", args=[subscription.pk])).content.decode()

    links = re.findall(r'href="([^"]*unsubscribe[^"]*)"', html)
    assert links == [digests.preview_unsubscribe_url()]
    assert "boss@example.org" not in html and "ops@example.org" not in html
    client.logout()
    for method in (client.get, client.post):
        response = method(links[0].removeprefix("http://127.0.0.1:8000"), ONE_CLICK)
        assert response.status_code == 200 and "unsubscribes nobody" in response.content.decode()
    subscription.refresh_from_db()
    assert digests.digest_recipients(subscription) == ["boss@example.org", "ops@example.org"]
    assert not Unsubscription.objects.exists()


def test_an_address_added_to_the_unsubscribed_list_in_the_admin_is_recorded_as_via_admin(org_a):
    subscription = subscribe(org_a, extra_recipients="ops@example.org")
    subscription.unsubscribed = ["boss@example.org"]
    subscription_save(subscription=subscription)
    subscription_save(subscription=subscription)  # saved again unchanged: nothing more recorded

    assert list(Unsubscription.objects.values_list("address", "via")) == [("boss@example.org", UnsubscribeVia.ADMIN)]


def test_the_subscription_page_and_the_list_show_its_unsubscriptions_to_its_organisation_only(
    client, org_a, org_b, manager_a, manager_b
):
    subscription = subscribe(org_a)
    subscription_unsubscribe(
        subscription_id=subscription.pk, address="ops@example.org", via=UnsubscribeVia.ONE_CLICK, user_agent="UA-A"
    )
    client.force_login(manager_a)
    page = client.get(reverse("admin:alerts_alertsubscription_change", args=[subscription.pk])).content.decode()
    assert "ops@example.org" in page and "One-click" in page
    listing = client.get(reverse("admin:alerts_unsubscription_changelist")).content.decode()
    assert "ops@example.org" in listing

    client.force_login(manager_b)
    assert "ops@example.org" not in client.get(reverse("admin:alerts_unsubscription_changelist")).content.decode()
