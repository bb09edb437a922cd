"""A Content-Security-Policy on every response (django-csp): strict on the admin, the API docs and the API, and the
digest Preview sandboxed, since it serves email HTML from the admin's own origin. The browser's side (nothing on
those pages is blocked) is tests/browser/test_csp.py."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from tests.alerts.test_digests import subscribe
from tests.config.test_settings import PRODUCTION_KEY, run_python

STRICT = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "style-src-attr": ["'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}


def policy(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def inline_scripts(html: str) -> list[str]:
    """<script> elements that run code of their own (JSON data blocks and src= scripts do not)."""
    tags = re.findall(r"<script\b[^>]*>", html)
    return [tag for tag in tags if "src=" not in tag and 'type="application/json"' not in tag]


def test_the_admin_login_page_has_the_strict_policy(client: Client) -> None:
    response = client.get("/admin/login/")

    assert policy(response) == STRICT
    assert inline_scripts(response.content.decode()) == []


def test_admin_pages_have_the_strict_policy_and_no_inline_script(client: Client, manager_a) -> None:
    client.force_login(manager_a)
    for url in ("/admin/", reverse("admin:devices_device_changelist"), reverse("admin:fleet_fleet_add")):
        response = client.get(url)
        assert response.status_code == 200, url
        assert policy(response) == STRICT, url
        assert inline_scripts(response.content.decode()) == [], url


def test_the_api_docs_have_the_strict_policy_and_load_their_start_up_script_as_a_file(client: Client) -> None:
    page = client.get(reverse("api-docs"))
    script = client.get(reverse("api-docs") + "?script=")

    assert page.status_code == 200
    assert policy(page) == STRICT
    assert inline_scripts(page.content.decode()) == []
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.content.decode()
    assert policy(script) == STRICT


def test_api_answers_and_probes_carry_the_policy_too(client: Client) -> None:
    for url in (reverse("api-schema"), "/api/v1/devices/", "/api/v1/nothing-here/", "/healthz"):
        assert policy(client.get(url))["default-src"] == ["'self'"], url


def test_the_digest_preview_is_sandboxed_and_may_load_nothing(client: Client, org_a, manager_a) -> None:
    subscription = subscribe(org_a)
    client.force_login(manager_a)

    response = client.get(reverse("admin:alerts_alertsubscription_preview", args=[subscription.pk]))

    assert response.status_code == 200
    assert policy(response) == {
        "default-src": ["'none'"],
        "style-src": ["'unsafe-inline'"],
        "img-src": ["data:"],
        "base-uri": ["'none'"],
        "form-action": ["'none'"],
        "frame-ancestors": ["'none'"],
        "sandbox": [],
    }


@pytest.mark.parametrize("dist", ["https://cdn.example.org/swagger-ui-dist@5", "https://cdn.example.org/swagger/"])
def test_swagger_ui_from_a_cdn_is_allowed_its_scripts_and_styles_only(dist: str) -> None:
    result = run_python(
        "import json; from config import settings as s; print(json.dumps(s.CONTENT_SECURITY_POLICY))",
        SECRET_KEY=PRODUCTION_KEY,
        API_DOCS_SWAGGER_UI_DIST=dist,
    )

    assert result.returncode == 0, result.stderr
    directives = json.loads(result.stdout)["DIRECTIVES"]
    assert directives["script-src"] == ["'self'", dist.rstrip("/") + "/"]
    assert directives["style-src"] == ["'self'", dist.rstrip("/") + "/"]
    assert directives["connect-src"] == ["'self'"]
