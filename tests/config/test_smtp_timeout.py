"""An SMTP server that accepts the connection and never speaks (frozen, or a black hole behind a NAT) costs
EMAIL_TIMEOUT seconds, then an error the digest's retry handles: never a worker stuck on it."""

from __future__ import annotations

import smtplib
import socket
import time
from collections.abc import Iterator

import pytest
from django.core.mail import get_connection, send_mail


@pytest.fixture
def silent_smtp_server() -> Iterator[int]:
    """A listening socket nobody answers on: the kernel completes the handshake, no greeting ever comes."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def test_a_silent_smtp_server_fails_the_send_after_email_timeout(settings, silent_smtp_server: int) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", silent_smtp_server
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 1

    started = time.monotonic()
    with pytest.raises((TimeoutError, smtplib.SMTPServerDisconnected)):
        send_mail("Digest", "body", "fleetpatch@example.org", ["manager@example.org"], connection=get_connection())

    assert 0.9 < time.monotonic() - started < 3
