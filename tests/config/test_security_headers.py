"""Production settings put the security headers on admin pages and API responses, and send plain HTTP to HTTPS.

The settings are read from a real import of ``config.settings`` under an operator's environment (DEBUG unset),
in a child process, then applied here: what is tested is what production computes, not a copy of it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from fleet.services import api_client_create
from tests.factories import DeviceFactory

ROOT = Path(__file__).resolve().parents[2]
SECURITY_SETTINGS = [
    "DEBUG",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_CONTENT_TYPE_NOSNIFF",
    "SECURE_REFERRER_POLICY",
    "SECURE_CROSS_ORIGIN_OPENER_POLICY",
    "SECURE_PROXY_SSL_HEADER",
    "X_FRAME_OPTIONS",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
]
READ_SETTINGS = f"""
import json, django
django.setup()
from django.conf import settings
print(json.dumps({{name: getattr(settings, name) for name in {SECURITY_SETTINGS!r}}}))
"""


@pytest.fixture(scope="module")
def production_security() -> dict:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "testserver,fleetpatch.example.org",
    }
    result = subprocess.run(
        [sys.executable, "-c", READ_SETTINGS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    values["SECURE_PROXY_SSL_HEADER"] = tuple(values["SECURE_PROXY_SSL_HEADER"])
    return values


@pytest.fixture
def production(settings, production_security) -> None:
    for name, value in production_security.items():
        setattr(settings, name, value)


def assert_security_headers(response) -> None:
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_production_settings_are_the_secure_ones(production_security) -> None:
    assert production_security["DEBUG"] is False
    assert production_security["SECURE_SSL_REDIRECT"] is True
    assert production_security["SESSION_COOKIE_SECURE"] is True
    assert production_security["CSRF_COOKIE_SECURE"] is True


@pytest.mark.parametrize("secure", ["https", "x-forwarded-proto"])
def test_admin_pages_carry_the_security_headers(production, manager_a, secure) -> None:
    # Either TLS reaches Django itself, or the proxy in front terminates it and says so.
    extra = {"secure": True} if secure == "https" else {"HTTP_X_FORWARDED_PROTO": "https"}
    client = Client()
    login_page = client.get(reverse("admin:login"), **extra)
    client.force_login(manager_a)
    index = client.get(reverse("admin:index"), **extra)

    assert login_page.status_code == 200 and index.status_code == 200
    assert_security_headers(login_page)
    assert_security_headers(index)
    assert login_page.cookies["csrftoken"]["secure"]


def test_api_responses_carry_the_security_headers_success_or_error(production, org_a) -> None:
    _, token = api_client_create(organisation=org_a, name="MDM", scopes=["read"])
    device = DeviceFactory(organisation=org_a)
    client = Client(HTTP_X_FORWARDED_PROTO="https")

    found = client.get(reverse("device-detail", args=[device.pk]), HTTP_AUTHORIZATION=f"Bearer {token}")
    refused = client.get(reverse("device-list"))
    unknown = client.get("/api/v1/no-such-endpoint/", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert [found.status_code, refused.status_code, unknown.status_code] == [200, 401, 404]
    for response in (found, refused, unknown):
        assert_security_headers(response)


def test_plain_http_is_redirected_to_https_except_the_probes(production) -> None:
    client = Client()

    admin = client.get("/admin/login/")
    api = client.get("/api/v1/devices/")
    probe = client.get("/healthz")

    assert admin.status_code == 301 and admin["Location"] == "https://testserver/admin/login/"
    assert api.status_code == 301 and api["Location"] == "https://testserver/api/v1/devices/"
    assert probe.status_code == 200
