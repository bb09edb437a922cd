"""The Content-Security-Policy breaks nothing, in a real browser: the admin (its JavaScript: the date and time
pickers, the actions bar, the dashboard's charts), the API docs (Swagger UI) and the digest Preview render with no
violation in Chromium's console. Screenshots go to CSP_SHOTS (default tests/artifacts/csp/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.urls import reverse

from tests.alerts.test_digests import subscribe
from tests.browser.conftest import ARTIFACTS
from tests.factories import DeviceFactory, FleetFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]
PASSWORD = "correct horse battery staple"
SHOTS = Path(os.environ.get("CSP_SHOTS", ARTIFACTS / "csp"))


@pytest.fixture
def watched(page):
    """The page, and every console message and uncaught error it produced."""
    messages: list[str] = []
    page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: messages.append(f"pageerror: {error}"))
    return page, messages


def violations(messages: list[str]) -> list[str]:
    return [m for m in messages if "Content Security Policy" in m or "Refused to" in m or m.startswith("pageerror")]


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def fleet_data(org_a):
    fleet = FleetFactory(organisation=org_a, name="Bretagne")
    for i, status in enumerate(["behind", "behind", "critical", "up_to_date", "update_pending"]):
        DeviceFactory(organisation=org_a, fleet=fleet, serial=f"A-{i}", compliance_status=status)
    UserFactory(username="root", password=PASSWORD, is_superuser=True)
    return org_a


def test_the_admin_and_its_javascript_run_under_the_policy(watched, live_server, fleet_data) -> None:
    page, messages = watched
    page.goto(f"{live_server.url}/admin/login/")
    shot(page, "login")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#fleet-dashboard")
    assert page.locator("#fleet-dashboard svg").count() >= 1, "the dashboard's charts"
    shot(page, "dashboard")

    page.goto(f"{live_server.url}{reverse('admin:fleet_apiclient_add')}")
    page.locator(".datetimeshortcuts a", has_text="Today").first.click()  # DateTimeShortcuts.js
    assert page.locator("#id_expires_at_0").input_value(), "the Today shortcut filled the date"
    page.locator(".datetimeshortcuts a.date-icon, .datetimeshortcuts a[id^=calendarlink]").first.click()
    page.wait_for_selector(".calendarbox", state="visible")
    shot(page, "date-picker")

    page.goto(f"{live_server.url}{reverse('admin:devices_device_changelist')}")
    page.locator("#result_list tbody tr").first.locator("input.action-select").check()  # actions.js
    page.wait_for_selector(".action-counter")
    assert "1 of" in page.locator(".action-counter").inner_text()
    shot(page, "device-list")

    assert violations(messages) == []


def test_the_api_docs_render_under_the_policy(watched, live_server) -> None:
    page, messages = watched
    page.goto(f"{live_server.url}{reverse('api-docs')}")
    page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
    assert "FleetPatch API" in page.locator(".swagger-ui .info .title").inner_text()
    page.wait_for_selector(".opblock", timeout=20_000)  # the schema was fetched and rendered
    shot(page, "api-docs")

    assert violations(messages) == []


def test_the_digest_preview_renders_sandboxed(watched, live_server, fleet_data) -> None:
    page, messages = watched
    subscription = subscribe(fleet_data)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#fleet-dashboard")

    page.goto(f"{live_server.url}{reverse('admin:alerts_alertsubscription_preview', args=[subscription.pk])}")
    page.wait_for_selector("h1")
    assert "FleetPatch digest for" in page.locator("h1").inner_text()
    # Its inline styles apply (the digest's white card), and it runs in an origin of its own: no cookie, no storage.
    background = page.locator("body > div").first.evaluate("e => getComputedStyle(e).backgroundColor")
    shot(page, "preview")

    assert background == "rgb(255, 255, 255)"
    assert page.evaluate("() => window.origin") == "null"
    assert violations(messages) == []
