"""Numbers and dates as the reader's language writes them: 12,345 and "Dec. 31, 2026" in English, 12 345 and
"31 décembre 2026" in French, in the admin's dashboard and lists and in the digests."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from alerts import digests
from alerts.models import AlertSubscription
from devices.models import DeviceTally
from fleet.scoping import CappedCountPaginator
from tests.factories import DeviceModelFactory

pytestmark = pytest.mark.django_db

NBSP = "\xa0"  # Django's French thousands separator
SEND = dt.datetime(2026, 1, 15, 7, 0, tzinfo=dt.UTC)


@pytest.fixture
def big_tally(org_a):
    """What the sweep would have counted for an organisation of 12,345 devices behind."""
    return DeviceTally.objects.create(
        organisation=org_a,
        model=DeviceModelFactory(name="Core-Z5"),
        compliance_status="behind",
        battery_status="ok",
        patch_bucket="0-30",
        on_target=False,
        is_waived=False,
        count=12345,
        computed_at=timezone.now(),
    )


@pytest.mark.parametrize(("language", "number"), [("en", "12,345"), ("fr", f"12{NBSP}345")])
def test_dashboard_counts_have_the_languages_thousands_separator(client, manager_a, big_tally, language, number):
    client.force_login(manager_a)
    page = client.get(reverse("admin:index"), headers={"accept-language": language}).content.decode()
    dashboard = page[page.index('id="fleet-dashboard"') :]
    assert f"data-status-count>{number}</a>" in dashboard
    assert f"{number} " in dashboard  # the total, and the model's device count
    assert "12345" not in dashboard


def test_the_device_list_says_more_than_ten_thousand_with_a_separator(client, manager_a, org_a, monkeypatch):
    # As if the organisation had more devices than the list counts (the capped count), without creating them.
    monkeypatch.setattr(CappedCountPaginator, "count", property(lambda self: 10_000))
    monkeypatch.setattr(CappedCountPaginator, "count_is_capped", property(lambda self: True))
    client.force_login(manager_a)
    page = client.get(reverse("admin:devices_device_changelist"), headers={"accept-language": "fr"}).content.decode()
    assert f"10{NBSP}000" in page


def _digest(org_a, language: str) -> digests.RenderedDigest:
    subscription = AlertSubscription(
        organisation=org_a,
        name="Matin",
        time_zone="Europe/Paris",
        send_at=dt.time(8, 0),
        language=language,
        extra_recipients="ops@example.org",
        created_at=SEND - dt.timedelta(days=30),
    )
    subscription.full_clean()
    subscription.save()
    with translation.override(language):
        digest = digests.build_digest(subscription, window_start=SEND - dt.timedelta(days=1), window_end=SEND)
        # Figures of a big organisation, without creating 12,345 devices: the rendering is what is tested.
        digest = dataclasses.replace(
            digest,
            status_counts=[
                digests.StatusCount("behind", "behind", 12345, 1234),
                *digest.status_counts[1:],
            ],
            sections=[digests.Section(status="behind", title="behind", total=12345, rows=[], more_url="https://x/")],
            end_of_support=[
                {
                    "model": "Crosscall Core-Z5",
                    "until": dt.date(2026, 12, 31),
                    "ended": False,
                    "device_count": 2345,
                    "url": "https://x/",
                }
            ],
        )
    return digests.render_digest(digest)


def test_a_french_digest_writes_numbers_and_dates_the_french_way(org_a):
    rendered = _digest(org_a, "fr")
    for part in (rendered.html, rendered.text):
        assert f"12{NBSP}345" in part and f"+1{NBSP}234" in part
        assert f"2{NBSP}345" in part
        assert "31 décembre 2026" in part
        assert "15 janvier 2026 08:00" in part  # the window's end, in the subscription's time zone
        assert "12345" not in part and "2026-12-31" not in part
    # The subject's whitespace is normalised to plain spaces (a header line), the grouping stays.
    assert "12 345" in rendered.subject


def test_an_english_digest_writes_numbers_and_dates_the_english_way(org_a):
    rendered = _digest(org_a, "en")
    for part in (rendered.html, rendered.text):
        assert "12,345" in part and "+1,234" in part and "2,345 devices" in part
        assert "Dec. 31, 2026" in part
        assert "Jan. 15, 2026, 8 a.m." in part
    assert rendered.subject.endswith("12,345 devices newly behind")
