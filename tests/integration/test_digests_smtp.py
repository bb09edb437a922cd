"""End to end: beat's dispatcher task goes through Redis to a real Celery worker, which sends the digests to a
real SMTP server on loopback; each subscription's digest arrives once, whatever is retried or repeated."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from django.utils import timezone

from fleet.choices import DeliveryStatus, Role
from fleet.models import AlertSubscription, DigestDelivery
from tests.factories import DeviceFactory, MembershipFactory, OrganisationFactory, StatusChangeFactory, UserFactory
from tests.integration.conftest import ROOT, wait_for

pytestmark = pytest.mark.integration


class Sink:
    """An aiosmtpd handler that keeps every accepted message, and can refuse the first few DATA commands."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.refuse = 0
        self.refused = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        with self._lock:
            if self.refuse > 0:
                self.refuse -= 1
                self.refused += 1
                return "451 4.7.1 Greylisted, try again later"
            self.messages.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_sink(real_services) -> Iterator[Sink]:
    """A real SMTP server on loopback; the worker started after this fixture sends through it."""
    from aiosmtpd.controller import Controller

    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    real_services.update(EMAIL_URL=f"smtp://127.0.0.1:{port}", DIGEST_RETRY_BACKOFF="1")
    try:
        yield sink
    finally:
        controller.stop()


def dispatch_through_the_broker(env: dict[str, str]) -> None:
    """What beat does every hour: publish the dispatcher task to the broker (Redis), for the worker to run."""
    subprocess.run(
        [sys.executable, "-m", "celery", "-A", "config", "call", "fleet.dispatch_digests"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )


def due_subscription(slug: str, name: str, manager_email: str) -> AlertSubscription:
    """A daily subscription whose send time has just passed (in UTC), with one device newly behind."""
    now = timezone.now()
    organisation = OrganisationFactory(name=name, slug=slug)
    MembershipFactory(
        organisation=organisation, role=Role.MANAGER, user=UserFactory(username=f"{slug}-boss", email=manager_email)
    )
    device = DeviceFactory(organisation=organisation, serial=f"{slug.upper()}-1", compliance_status="behind")
    StatusChangeFactory(device=device, to_status="behind", changed_at=now - dt.timedelta(minutes=30))
    return AlertSubscription.objects.create(
        organisation=organisation,
        name="Daily",
        time_zone="UTC",
        send_at=(now - dt.timedelta(minutes=5)).time().replace(second=0, microsecond=0),
        created_at=now - dt.timedelta(days=2),
    )


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_each_due_digest_arrives_once_as_a_correct_mime_message(
    smtp_sink, celery_worker_process, real_services, tmp_path
):
    ministry = due_subscription("ministry", "Ministère de test", "chef@ministere.example")
    company = due_subscription("company", "Company B", "boss@company.example")

    dispatch_through_the_broker(real_services)
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
    dispatch_through_the_broker(real_services)
    assert wait_for(lambda: log.read_text().count("digest dispatch:") >= 2)
    assert wait_for(lambda: "0 claimed" in log.read_text())
    assert len(smtp_sink.messages) == 2
    assert DigestDelivery.objects.count() == 2


def test_a_server_that_refuses_then_accepts_gets_the_digest_once(smtp_sink, celery_worker_process, real_services):
    smtp_sink.refuse = 1
    subscription = due_subscription("greylist", "Greylisted Org", "ops@greylisted.example")

    dispatch_through_the_broker(real_services)
    assert wait_for(lambda: subscription.deliveries.filter(status=DeliveryStatus.SENT).exists()), list(
        subscription.deliveries.values("status", "attempts", "error")
    )
    delivery = subscription.deliveries.get()
    assert smtp_sink.refused == 1
    assert len(smtp_sink.messages) == 1
    assert delivery.attempts == 2
    assert "451" in delivery.error
