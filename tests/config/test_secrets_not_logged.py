"""No API token and no password ever reaches a log line, in either log format, whatever the request's fate."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse

from config.logging import JsonFormatter, RequestIdFilter
from devices.api.views import DeviceViewSet
from fleet.services import api_client_create, api_client_revoke
from tests.factories import DeviceFactory

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"  # settings.LOGGING's "plain"


@pytest.fixture
def all_log_output() -> Iterator[Callable[[], str]]:
    """Every record of every logger at every level (SQL included), rendered as both production formats write it.

    Levels, ``propagate`` and ``disabled`` are opened up for the test so that nothing is filtered before the
    capture: a secret that only a DEBUG line or a non-propagating logger carries is caught too.
    """
    stream = io.StringIO()
    handlers = []
    for formatter in (JsonFormatter(), logging.Formatter(PLAIN_FORMAT)):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handler.addFilter(RequestIdFilter())
        handlers.append(handler)
    root = logging.getLogger()
    saved_root_level = root.level
    saved = {
        name: (logger.level, logger.propagate, logger.disabled)
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    for name in saved:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.propagate, logger.disabled = True, False
    root.setLevel(logging.DEBUG)
    for handler in handlers:
        root.addHandler(handler)
    saved_debug_cursor = connection.force_debug_cursor
    connection.force_debug_cursor = True  # django.db.backends logs every query with its parameters
    try:
        yield stream.getvalue
    finally:
        connection.force_debug_cursor = saved_debug_cursor
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(saved_root_level)
        for name, (level, propagate, disabled) in saved.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            logger.propagate, logger.disabled = propagate, disabled


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_api_tokens_never_reach_the_logs_whatever_the_response(org_a, all_log_output) -> None:
    _, full = api_client_create(organisation=org_a, name="MDM", scopes=["read", "report"])
    _, reader = api_client_create(organisation=org_a, name="Dashboard", scopes=["read"])
    revoked_client, revoked = api_client_create(organisation=org_a, name="Old MDM", scopes=["read"])
    api_client_revoke(api_clients=type(revoked_client).objects.filter(pk=revoked_client.pk))
    unknown = "fp_" + "x" * 40
    device = DeviceFactory(organisation=org_a)
    client = Client()
    checkins = reverse("api-checkins")

    answered = [
        client.get(reverse("device-list"), **bearer(full)).status_code,
        client.get(reverse("device-detail", args=[device.pk]), **bearer(full)).status_code,
        client.get(reverse("device-detail", args=[device.pk + 1000]), **bearer(full)).status_code,
        client.post(checkins, {"serial": ""}, content_type="application/json", **bearer(full)).status_code,
        client.post(checkins, "{not json", content_type="application/json", **bearer(full)).status_code,
        client.post(checkins, {"serial": "SN1"}, content_type="application/json", **bearer(reader)).status_code,
        client.get(reverse("device-list"), **bearer(revoked)).status_code,
        client.get(reverse("device-list"), **bearer(unknown)).status_code,
    ]

    assert answered == [200, 200, 404, 400, 400, 403, 401, 401]
    output = all_log_output()
    # The capture works: the error responses were logged (django.request) and the queries too.
    assert "Not Found" in output and "Unauthorized" in output and "SELECT" in output
    for token in (full, reader, revoked, unknown):
        assert token not in output


def test_an_unhandled_error_logs_and_mails_its_traceback_without_the_token(
    org_a, all_log_output, settings, monkeypatch
) -> None:
    settings.ADMINS = [("Operations", "ops@example.org")]
    _, token = api_client_create(organisation=org_a, name="MDM", scopes=["read"])

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the device list broke")

    monkeypatch.setattr(DeviceViewSet, "list", crash)
    response = Client(raise_request_exception=False).get(reverse("device-list"), **bearer(token))

    assert response.status_code == 500
    output = all_log_output()
    assert "the device list broke" in output  # the traceback is logged...
    assert token not in output  # ...but not the token that came with the request
    # Django's error mail to ADMINS carries the request's headers: the Authorization one is cleansed.
    assert mail.outbox, "the error mail to ADMINS was not sent"
    for message in mail.outbox:
        body = message.body + "".join(str(content) for content, _ in getattr(message, "alternatives", []))
        assert "the device list broke" in body
        assert token not in body


def test_admin_passwords_never_reach_the_logs_failed_locked_or_accepted(
    manager_a, viewer_a, all_log_output, settings
) -> None:
    settings.ADMIN_LOGIN_MAX_FAILURES = 3
    right = "a-Right-password-nobody-guesses-42"
    manager_a.set_password(right)
    manager_a.save(update_fields=["password"])
    tried = [f"wrong-guess-number-{attempt}-of-many" for attempt in range(4)]
    client = Client()
    login = reverse("admin:login")

    # Three failures lock the manager's login; the fourth attempt is refused as locked.
    for password in tried:
        response = client.post(login, {"username": manager_a.username, "password": password})
        assert response.status_code == 200  # the form again, with its error
    # Another account, with the right password this time: accepted.
    viewer_password = "the-Viewer-passphrase-is-long-too-7"
    viewer_a.set_password(viewer_password)
    viewer_a.save(update_fields=["password"])
    accepted = client.post(login, {"username": viewer_a.username, "password": viewer_password})

    assert accepted.status_code == 302
    output = all_log_output()
    assert "admin login locked" in output  # the lockout was logged, with the username only
    for password in (*tried, right, viewer_password):
        assert password not in output


def test_creating_an_api_client_does_not_log_its_token(org_a, all_log_output) -> None:
    _, token = api_client_create(organisation=org_a, name="New MDM", scopes=["read", "report"])

    output = all_log_output()
    assert "INSERT" in output  # the row was written, and its query logged
    assert token not in output
