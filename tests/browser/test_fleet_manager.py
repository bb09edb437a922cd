"""A fleet manager's morning, in a real browser: log in, read the dashboard, list what is behind, export it."""

from __future__ import annotations

import csv
import io

import pytest
from django.utils import timezone

from devices.models import BatteryEvent
from fleet.choices import Role
from tests.browser.conftest import screenshot
from tests.factories import DeviceFactory, FleetFactory, MembershipFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]
PASSWORD = "correct horse battery staple"


@pytest.fixture
def manager(org_a, org_b):
    fleet = FleetFactory(organisation=org_a, name="Bretagne")
    for i in range(3):
        DeviceFactory(organisation=org_a, fleet=fleet, serial=f"A-BEHIND-{i}", compliance_status="behind")
    DeviceFactory(organisation=org_a, fleet=fleet, serial="A-OK-0", compliance_status="up_to_date")
    DeviceFactory(organisation=org_b, serial="B-BEHIND-0", compliance_status="behind")
    user = UserFactory(username="marie", password=PASSWORD)
    MembershipFactory(user=user, organisation=org_a, role=Role.MANAGER)
    return user


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#fleet-dashboard")


def test_a_manager_reads_the_dashboard_filters_devices_behind_and_exports_them(page, live_server, manager):
    log_in(page, live_server, "marie")
    dashboard = page.locator("#fleet-dashboard")
    assert "Compliance of Ministère A" in dashboard.inner_text()
    assert "Company B" not in page.content()
    screenshot(page, "dashboard")

    page.locator("#fleet-dashboard a", has_text="Behind").first.click()
    page.wait_for_selector("#result_list")
    serials = sorted(page.locator("#result_list tbody th a").all_inner_texts())
    assert serials == ["A-BEHIND-0", "A-BEHIND-1", "A-BEHIND-2"]
    screenshot(page, "devices-behind")

    with page.expect_download() as download_info:
        page.click("text=Export CSV")
    rows = list(csv.DictReader(io.StringIO(open(download_info.value.path(), encoding="utf-8-sig").read())))
    assert sorted(r["serial number"] for r in rows) == serials

    # Record a battery replacement for the first device through the action and its form.
    page.locator("#result_list tbody tr").first.locator("input.action-select").check()
    page.select_option("select[name=action]", "record_battery_replacement")
    page.click("button[name=index]")
    page.wait_for_selector("#action-form")
    page.fill("#id_occurred_on", timezone.now().date().isoformat())
    page.fill("#id_reason", "swollen battery")
    screenshot(page, "battery-replacement-form")
    page.click("input[name=apply]")
    page.wait_for_selector(".messagelist")
    assert "Battery replacement recorded for 1 device" in page.locator(".messagelist").inner_text()
    assert BatteryEvent.objects.get().reason == "swollen battery"
