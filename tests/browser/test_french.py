"""French in a real browser: Chromium set to French gets the admin in French (login, dashboard, device list,
timeline), with French dates and numbers, and a French subscription's digest reads in French."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from alerts.models import AlertSubscription
from devices.models import DeviceTally
from fleet.choices import Role
from tests.browser.conftest import ARTIFACTS, screenshot
from tests.factories import DeviceFactory, FleetFactory, MembershipFactory, StatusChangeFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]
PASSWORD = "correct horse battery staple"
SEEN = dt.datetime(2026, 3, 4, 9, 30, tzinfo=dt.UTC)


@pytest.fixture
def french_page(browser, request):
    """A page of a browser whose language is French: it sends ``Accept-Language: fr-FR``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="fr-FR")
    page = context.new_page()
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-last.png"), full_page=True)
    context.close()


@pytest.fixture
def claire(org_a, org_b):
    fleet = FleetFactory(organisation=org_a, name="Bretagne")
    device = DeviceFactory(
        organisation=org_a, fleet=fleet, serial="A-BEHIND-0", compliance_status="behind", last_check_in_at=SEEN
    )
    StatusChangeFactory(device=device, from_status="up_to_date", to_status="behind", changed_at=SEEN)
    DeviceFactory(organisation=org_b, serial="B-BEHIND-0", compliance_status="behind")
    # What the sweep would count for a bigger fleet, so the dashboard shows a number with a thousands separator.
    DeviceTally.objects.create(
        organisation=org_a,
        model=device.model,
        compliance_status="behind",
        battery_status="ok",
        patch_bucket="0-30",
        on_target=False,
        is_waived=False,
        count=12345,
        computed_at=timezone.now(),
    )
    user = UserFactory(username="claire", password=PASSWORD)
    MembershipFactory(user=user, organisation=org_a, role=Role.MANAGER)
    return user


def assert_french(text: str, *, present: list[str], absent: list[str]) -> None:
    missing = [phrase for phrase in present if phrase not in text]
    english = [phrase for phrase in absent if phrase in text]
    assert not missing and not english, f"missing French {missing}, English left {english}"


def test_the_admin_speaks_french_to_a_french_browser(french_page, live_server, claire):
    page = french_page
    page.goto(f"{live_server.url}/admin/login/")
    assert page.locator("html").get_attribute("lang") == "fr"
    assert_french(
        page.locator("body").text_content(),
        present=["Nom d’utilisateur", "Mot de passe"],
        absent=["Username", "Password"],
    )
    assert page.locator("input[type=submit]").get_attribute("value") == "Connexion"
    screenshot(page, "fr-login")
    page.fill("#id_username", "claire")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#fleet-dashboard")

    dashboard = page.locator("#fleet-dashboard").text_content()
    assert_french(
        dashboard,
        present=["Conformité de Ministère A", "Appareils par statut de conformité", "Âge du correctif de sécurité"],
        absent=["Compliance of", "Devices by compliance status", "Security patch age"],
    )
    assert "12\u00a0345" in dashboard or "12\u202f345" in dashboard, "French thousands separator"
    assert "Company B" not in page.content()
    screenshot(page, "fr-dashboard")

    page.goto(f"{live_server.url}{reverse('admin:devices_device_changelist')}")
    page.wait_for_selector("#result_list")
    device_list = page.locator("#content").text_content()
    assert_french(
        device_list,
        present=["Exporter en CSV", "Par statut de conformité", "4 mars 2026 09:30"],
        absent=["Export CSV", "Compliance status", "March 4, 2026"],
    )
    assert page.locator("#result_list tbody th a").all_inner_texts() == ["A-BEHIND-0"]
    screenshot(page, "fr-device-list")

    page.click("text=A-BEHIND-0")
    page.click("text=Chronologie")
    page.wait_for_selector("#timeline")
    timeline = page.locator("#content").text_content()
    assert_french(
        timeline,
        present=["Statut de conformité", "Historique, du plus récent au plus ancien", "4 mars 2026"],
        absent=["Compliance status", "History, newest first", "Timeline"],
    )
    screenshot(page, "fr-timeline")


def test_a_french_digest_reads_in_french_in_chromium(french_page, live_server, claire, org_a):
    subscription = AlertSubscription(
        organisation=org_a,
        name="Synthèse du matin",
        time_zone="Europe/Paris",
        send_at=dt.time(8, 0),
        language="fr",
        extra_recipients="dsi@example.org",
    )
    subscription.full_clean()
    subscription.save()
    page = french_page
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "claire")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#fleet-dashboard")

    page.goto(f"{live_server.url}{reverse('admin:alerts_alertsubscription_preview', args=[subscription.pk])}")
    assert page.locator("html").get_attribute("lang") == "fr"
    assert_french(
        page.locator("body").text_content(),
        present=[
            "Synthèse FleetPatch pour Ministère A",
            "Appareils par statut",
            "Ne plus l’envoyer à (l’adresse de chaque destinataire)",
        ],
        absent=["FleetPatch digest for", "Devices by status", "Stop sending it to", "dsi@example.org"],
    )
    screenshot(page, "fr-digest")
