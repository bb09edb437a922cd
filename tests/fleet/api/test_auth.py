"""Every endpoint: no token, a revoked or expired token → 401; a token without the scope → 403."""

from __future__ import annotations

import pytest

from tests.factories import OSBuildFactory

READ, WRITE = "read", "write"

ENDPOINTS = [
    ("get", "/api/v1/devices/", READ),
    ("get", "/api/v1/devices/{device}/", READ),
    ("get", "/api/v1/devices/by-serial/{serial}/", READ),
    ("get", "/api/v1/devices/by-imei/{imei}/", READ),
    ("post", "/api/v1/devices/", WRITE),
    ("patch", "/api/v1/devices/{device}/", WRITE),
    ("post", "/api/v1/devices/{device}/retire/", WRITE),
    ("get", "/api/v1/fleets/", READ),
    ("get", "/api/v1/fleets/{fleet}/", READ),
    ("get", "/api/v1/models/", READ),
    ("get", "/api/v1/models/{model}/", READ),
    ("get", "/api/v1/builds/", READ),
    ("get", "/api/v1/builds/{build}/", READ),
    ("post", "/api/v1/builds/", WRITE),
    ("post", "/api/v1/builds/{build}/revoke/", WRITE),
    ("get", "/api/v1/battery-events/", READ),
    ("post", "/api/v1/battery-events/", WRITE),
    ("get", "/api/v1/compliance/summary/", READ),
    ("get", "/api/v1/compliance/time-to-patch/?model={model}", READ),
]
IDS = [f"{method} {url}" for method, url, _kind in ENDPOINTS]


@pytest.fixture
def urls(org_a, device_a, fleet_a, phone_model):
    private_build = OSBuildFactory(model=phone_model, organisation=org_a, build_number="INHOUSE.1")
    values = {
        "device": device_a.pk,
        "serial": device_a.serial,
        "imei": device_a.imei,
        "fleet": fleet_a.pk,
        "model": phone_model.pk,
        "build": private_build.pk,
    }
    return lambda url: url.format(**values)


def call(client, method: str, url: str):
    return getattr(client, method)(url, {}, format="json") if method != "get" else client.get(url)


@pytest.mark.parametrize(("method", "url", "kind"), ENDPOINTS, ids=IDS)
def test_a_request_without_a_token_is_401(anonymous, urls, method, url, kind):
    response = call(anonymous, method, urls(url))
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "detail" in response.json()


@pytest.mark.parametrize(("method", "url", "kind"), ENDPOINTS, ids=IDS)
def test_a_revoked_token_is_401(revoked_a, urls, method, url, kind):
    response = call(revoked_a, method, urls(url))
    assert response.status_code == 401
    assert response.json() == {"detail": "This token was revoked."}


@pytest.mark.parametrize(("method", "url", "kind"), ENDPOINTS, ids=IDS)
def test_an_expired_token_is_401(expired_a, urls, method, url, kind):
    response = call(expired_a, method, urls(url))
    assert response.status_code == 401
    assert response.json() == {"detail": "This token has expired."}


@pytest.mark.parametrize(("method", "url", "kind"), ENDPOINTS, ids=IDS)
def test_a_token_without_the_needed_scope_is_403(reader_a, reporter_a, urls, method, url, kind):
    # Reads need "read" (the reporter lacks it); writes need enrol, catalogue or report (the reader lacks them).
    client = reporter_a if kind == READ else reader_a
    response = call(client, method, urls(url))
    assert response.status_code == 403, response.content
    assert "scope" in response.json()["detail"]


@pytest.mark.parametrize(("method", "url", "kind"), ENDPOINTS, ids=IDS)
def test_a_token_with_every_scope_gets_past_authentication(mdm_a, urls, method, url, kind):
    response = call(mdm_a, method, urls(url))
    assert response.status_code not in (401, 403), response.content


def test_an_unknown_token_is_401(http, org_a, device_a):
    assert http("not-a-token").get("/api/v1/devices/").status_code == 401


def test_a_malformed_authorization_header_is_401(anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer two words")
    assert anonymous.get("/api/v1/devices/").status_code == 401
