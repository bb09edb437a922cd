"""End to end: beat's dispatcher task goes through Redis to a real Celery worker, which sends the digests to a
real SMTP server on loopback; each subscription's digest arrives once, whatever is retried or repeated."""

from __future__ import annotations

import email
import email.policy

import pytest

from alerts.choices import DeliveryStatus
from alerts.models import DigestDelivery
from tests.integration.conftest import due_subscription, wait_for
from tests.integration.processes import send_task

pytestmark = pytest.mark.integration


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_each_due_digest_arrives_once_as_a_correct_mime_message(
    smtp_sink, celery_worker_process, real_services, tmp_path
):
    ministry = due_subscription("ministry", "Ministère de test", "chef@ministere.example")
    company = due_subscription("company", "Company B", "boss@company.example")

    send_task(real_services, "fleet.dispatch_digests")
    assert wait_for(lambda: DigestDelivery.objects.filter(status=DeliveryStatus.SENT).count() == 2), list(
        DigestDelivery.objects.values("status", "error")
    )
    assert len(smtp_sink.messages) == 2

    by_recipient = {tuple(rcpt): parse(raw) for rcpt, raw in smtp_sink.messages}
    for subscription, address, organisation_name, serial in (
        (ministry, "chef@ministere.example", "Ministère de test", "MINISTRY-1"),
        (company, "boss@company.example", "Company B", "COMPANY-1"),
    ):
        message = by_recipient[(address,)]
        assert message.get_content_type() == "multipart/alternative"
        parts = list(message.iter_parts())
        assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
        assert message["To"] == address
        # Django folds an encoded subject onto a continuation line; mail clients drop the folding whitespace.
        assert message["Subject"].strip() == f"[FleetPatch] {organisation_name}: 1 device newly behind"
        assert serial in parts[0].get_content() and serial in parts[1].get_content()
        assert subscription.deliveries.get().status == DeliveryStatus.SENT

    # Beat firing again (or a redelivered task): every period is already claimed, nothing is sent.
    log = tmp_path / "worker.log"
    send_task(real_services, "fleet.dispatch_digests")
    assert wait_for(lambda: log.read_text().count("digest dispatch:") >= 2)
    assert wait_for(lambda: "0 claimed" in log.read_text())
    assert len(smtp_sink.messages) == 2
    assert DigestDelivery.objects.count() == 2


def test_a_server_that_refuses_then_accepts_gets_the_digest_once(smtp_sink, celery_worker_process, real_services):
    smtp_sink.refuse = 1
    subscription = due_subscription("greylist", "Greylisted Org", "ops@greylisted.example")

    send_task(real_services, "fleet.dispatch_digests")
    assert wait_for(lambda: subscription.deliveries.filter(status=DeliveryStatus.SENT).exists()), list(
        subscription.deliveries.values("status", "attempts", "error")
    )
    delivery = subscription.deliveries.get()
    assert smtp_sink.refused == 1
    assert len(smtp_sink.messages) == 1
    assert delivery.attempts == 2
    assert "451" in delivery.error


def test_each_recipient_gets_one_message_with_only_its_own_link_and_can_unsubscribe_in_one_click(
    smtp_sink, celery_worker_process, real_services, tmp_path
):
    from django.test import Client

    from alerts.choices import MessageStatus, UnsubscribeVia
    from alerts.digests import digest_recipients
    from alerts.models import Unsubscription

    smtp_sink.refuse = 1  # the first recipient's first attempt is greylisted
    subscription = due_subscription("team", "Team Org", "boss@team.example")
    subscription.extra_recipients = "ops@team.example\nsoc@team.example"
    subscription.save(update_fields=["extra_recipients"])
    addresses = ["boss@team.example", "ops@team.example", "soc@team.example"]

    send_task(real_services, "fleet.dispatch_digests")
    assert wait_for(lambda: subscription.deliveries.filter(status=DeliveryStatus.SENT).exists()), list(
        subscription.deliveries.values("status", "attempts", "error")
    )
    delivery = subscription.deliveries.get()
    assert smtp_sink.refused == 1 and delivery.attempts == 2
    # One SMTP transaction per recipient, each to that recipient alone, each accepted once.
    assert sorted(rcpt for rcpt, _raw in smtp_sink.messages) == [[address] for address in addresses]
    assert set(delivery.messages.values_list("status", flat=True)) == {MessageStatus.SENT}
    assert sorted(delivery.messages.values_list("attempts", flat=True)) == [1, 1, 2]

    links = {}
    for (address,), raw in smtp_sink.messages:
        message = parse(raw)
        assert message["To"] == address
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        link = message["List-Unsubscribe"].strip().removeprefix("<").removesuffix(">")
        assert f"/alerts/unsubscribe/{subscription.pk}/" in link
        text, html = (part.get_content() for part in message.iter_parts())
        assert link in text and link.replace("&", "&amp;") in html
        links[address] = link
        for other in set(addresses) - {address}:
            assert other not in text and other not in html  # nobody else's address, hence nobody else's link
    assert len(set(links.values())) == 3

    # Beat again: nothing more for anybody.
    log = tmp_path / "worker.log"
    send_task(real_services, "fleet.dispatch_digests")
    assert wait_for(lambda: log.read_text().count("digest dispatch:") >= 2)
    assert len(smtp_sink.messages) == 3

    # A mail scanner follows ops's link (GET): nothing happens. Ops's mail client POSTs the one-click body.
    client = Client(enforce_csrf_checks=True)
    path = links["ops@team.example"].split("127.0.0.1:8000", 1)[1]
    assert client.get(path).status_code == 200
    assert digest_recipients(subscription) == addresses
    assert (
        client.post(path, {"List-Unsubscribe": "One-Click"}, headers={"user-agent": "MailClient/1"}).status_code == 200
    )
    subscription.refresh_from_db()
    assert digest_recipients(subscription) == ["boss@team.example", "soc@team.example"]
    record = Unsubscription.objects.get()
    assert (record.address, record.via, record.user_agent) == (
        "ops@team.example",
        UnsubscribeVia.ONE_CLICK,
        "MailClient/1",
    )
