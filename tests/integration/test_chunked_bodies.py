"""A body sent with ``Transfer-Encoding: chunked`` (no Content-Length) is read as sent, or refused (issue #15).

Django alone reads such a body as empty: a chunked check-in was answered as if it were ``{}``, and a chunked
``PATCH`` answered 200 having changed nothing. Under gunicorn (which de-chunks and says where the body ends)
it is now read; a server that cannot say so answers 411. Both against real server processes.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator

import pytest
from django.utils import timezone

from devices.models import CheckIn, Device
from fleet.services import api_client_create
from tests.factories import DeviceFactory, OrganisationFactory
from tests.integration.processes import gunicorn

pytestmark = pytest.mark.integration


def chunks(payload: bytes, size: int = 7) -> Iterator[bytes]:
    for start in range(0, len(payload), size):
        yield payload[start : start + size]


def chunked_request(port: int, method: str, path: str, body: object, token: str) -> tuple[int, dict, dict]:
    """``body`` as JSON in chunks of 7 bytes: http.client then sends Transfer-Encoding: chunked and no length."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        connection.request(method, path, body=chunks(json.dumps(body).encode()), headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null"), dict(response.getheaders())
    finally:
        connection.close()


def test_under_gunicorn_a_chunked_check_in_and_a_chunked_patch_are_read_as_sent(real_services, tmp_path):
    organisation = OrganisationFactory()
    device = DeviceFactory(organisation=organisation, serial="CHUNKED-1", asset_tag="OLD")
    _, token = api_client_create(organisation=organisation, name="MDM", scopes=["read", "report", "enrol"])
    env = {**real_services, "API_MAX_BODY_BYTES": "4000"}
    report = {"serial": "CHUNKED-1", "reported_at": timezone.now().isoformat(), "agent_version": "9.9.9"}

    with gunicorn(env, workers=1, log_path=tmp_path / "gunicorn.log") as port:
        created = chunked_request(port, "POST", "/api/v1/checkins/", report, token)
        patched = chunked_request(port, "PATCH", f"/api/v1/devices/{device.pk}/", {"asset_tag": "NEW"}, token)
        too_large = chunked_request(port, "POST", "/api/v1/checkins/", {**report, "model": "x" * 5000}, token)

    assert created[0] == 201, created
    assert CheckIn.objects.get(device=device).agent_version == "9.9.9"
    assert patched[0] == 200, patched
    assert Device.objects.get(pk=device.pk).asset_tag == "NEW"
    assert too_large[0] == 413, too_large
    assert "4000 bytes" in too_large[1]["detail"]
    assert CheckIn.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_server_that_cannot_say_where_a_chunked_body_ends_answers_411_naming_content_length(live_server):
    # Django's own server (runserver's) leaves the chunks' framing in the stream: reading it is not possible.
    port = int(live_server.url.rsplit(":", 1)[1])
    body = b'{"serial": "X"}'
    raw = (
        b"POST /api/v1/checkins/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 411"), head
    assert b"application/json" in head
    assert "Content-Length" in json.loads(payload)["detail"]
