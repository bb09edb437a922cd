"""Email digests: what a digest says, when it is due, and that each period is sent once."""

from __future__ import annotations

import datetime as dt
import email
import smtplib

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import translation

from alerts import digests
from alerts.choices import DeliveryStatus, DigestFrequency, MessageStatus
from alerts.models import AlertSubscription, DigestDelivery
from alerts.services import digest_delivery_send, digests_dispatch
from devices.models import Waiver
from fleet.choices import Role
from tests.factories import (
    DeviceFactory,
    DeviceModelFactory,
    FleetFactory,
    MembershipFactory,
    OSBuildFactory,
    StatusChangeFactory,
    UserFactory,
)

UTC = dt.UTC
# Thursday 15 January 2026, 07:00 UTC = 08:00 in Paris (winter time, UTC+1).
WINTER_SEND = dt.datetime(2026, 1, 15, 7, 0, tzinfo=UTC)
PREVIOUS_SEND = WINTER_SEND - dt.timedelta(days=1)
IN_WINDOW = WINTER_SEND - dt.timedelta(hours=12)
BEFORE_WINDOW = PREVIOUS_SEND - dt.timedelta(hours=3)


def subscribe(organisation, **fields) -> AlertSubscription:
    fields.setdefault("name", "Morning digest")
    fields.setdefault("time_zone", "Europe/Paris")
    fields.setdefault("send_at", dt.time(8, 0))
    fields.setdefault("extra_recipients", "ops@example.org")
    fields.setdefault("created_at", WINTER_SEND - dt.timedelta(days=30))
    fleets = fields.pop("fleets", [])
    subscription = AlertSubscription(organisation=organisation, **fields)
    subscription.full_clean()
    subscription.save()
    subscription.fleets.set(fleets)
    return subscription


def newly(device, to_status: str, at: dt.datetime, from_status: str = "up_to_date"):
    return StatusChangeFactory(device=device, from_status=from_status, to_status=to_status, changed_at=at)


@pytest.fixture
def fleet_of_a(org_a, org_b):
    """Organisation A with known transitions; organisation B with one that A must never see."""
    north = FleetFactory(organisation=org_a, name="North", slug="north")
    south = FleetFactory(organisation=org_a, name="South", slug="south")
    model = DeviceModelFactory(name="Core-Z5")
    old = OSBuildFactory(model=model, build_number="CZ5.OLD", security_patch_level=dt.date(2025, 9, 5))
    new = OSBuildFactory(model=model, build_number="CZ5.NEW")

    def device(serial: str, status: str, fleet=north, **extra):
        return DeviceFactory(
            organisation=extra.pop("organisation", org_a),
            serial=serial,
            fleet=fleet,
            model=model,
            current_build=old,
            latest_build=new,
            compliance_status=status,
            **extra,
        )

    devices = {
        "behind_new": device("A-BEHIND-NEW", "behind", asset_tag="INV-1", behind_since=dt.date(2026, 1, 1)),
        "behind_old": device("A-BEHIND-OLD", "behind", behind_since=dt.date(2025, 12, 1)),
        "critical": device("A-CRITICAL", "critical", fleet=south),
        "waived": device("A-WAIVED", "behind", is_waived=True),
        "recovered": device("A-RECOVERED", "up_to_date"),
        "silent": device("A-SILENT", "silent", fleet=south),
    }
    newly(devices["behind_new"], "behind", IN_WINDOW)
    newly(devices["behind_old"], "behind", BEFORE_WINDOW)
    newly(devices["critical"], "critical", WINTER_SEND - dt.timedelta(hours=1), from_status="behind")
    newly(devices["waived"], "behind", IN_WINDOW)
    newly(devices["recovered"], "behind", IN_WINDOW - dt.timedelta(hours=2))
    newly(devices["recovered"], "up_to_date", IN_WINDOW, from_status="behind")
    newly(devices["silent"], "silent", IN_WINDOW)
    other = DeviceFactory(organisation=org_b, serial="B-BEHIND", compliance_status="behind")
    newly(other, "behind", IN_WINDOW)
    return {"north": north, "south": south, **devices}


def build(subscription: AlertSubscription, **kwargs) -> digests.Digest:
    kwargs.setdefault("window_start", PREVIOUS_SEND)
    kwargs.setdefault("window_end", WINTER_SEND)
    with translation.override(subscription.language):
        return digests.build_digest(subscription, **kwargs)


def serials(section: digests.Section) -> list[str]:
    return [row.serial for row in section.rows]


# --- What a digest says ----------------------------------------------------------------------------------


def test_the_digest_lists_the_devices_that_entered_a_status_during_the_window_grouped_by_status(org_a, fleet_of_a):
    digest = build(subscribe(org_a))

    assert {section.status: serials(section) for section in digest.sections} == {
        "behind": ["A-BEHIND-NEW"],
        "critical": ["A-CRITICAL"],
        "silent": ["A-SILENT"],
    }
    assert digest.newly_total == 3
    assert not digest.is_empty


def test_waived_devices_devices_that_recovered_and_older_transitions_are_left_out(org_a, fleet_of_a):
    digest = build(subscribe(org_a))
    listed = {row.serial for section in digest.sections for row in section.rows}
    assert {"A-WAIVED", "A-RECOVERED", "A-BEHIND-OLD"}.isdisjoint(listed)


def test_nothing_from_another_organisation_reaches_a_digest(org_a, fleet_of_a):
    subscription = subscribe(org_a)
    digest = build(subscription)
    rendered = digests.render_digest(digest)

    assert "B-BEHIND" not in rendered.text + rendered.html
    assert sum(count.count for count in digest.status_counts) == 5  # A's devices, the waived one left out


def test_counts_by_status_leave_waived_devices_out_and_say_what_changed_since_the_previous_digest(org_a, fleet_of_a):
    digest = build(subscribe(org_a), previous_counts={"status:behind": 3, "status:critical": 0, "status:silent": 1})
    counts = {count.status: (count.count, count.change) for count in digest.status_counts}
    assert counts["behind"] == (2, -1)
    assert counts["critical"] == (1, 1)
    assert counts["silent"] == (1, 0)
    assert counts["up_to_date"] == (1, 1)


def test_a_first_digest_has_counts_but_no_change(org_a, fleet_of_a):
    digest = build(subscribe(org_a), previous_counts=None)
    assert all(count.change is None for count in digest.status_counts)


def test_a_subscription_narrowed_to_a_fleet_reports_only_that_fleet(org_a, fleet_of_a):
    digest = build(subscribe(org_a, fleets=[fleet_of_a["south"]]))
    assert {section.status: serials(section) for section in digest.sections} == {
        "critical": ["A-CRITICAL"],
        "silent": ["A-SILENT"],
    }


def test_a_subscription_reports_only_the_statuses_it_asks_for(org_a, fleet_of_a):
    digest = build(subscribe(org_a, report_silent=False, report_critical=False))
    assert [section.status for section in digest.sections] == ["behind"]


def test_a_device_line_has_its_identity_builds_patch_age_days_behind_and_an_admin_link(org_a, fleet_of_a, settings):
    settings.SITE_URL = "https://fleet.example.org"
    row = build(subscribe(org_a)).sections[0].rows[0]

    assert (row.serial, row.asset_tag, row.fleet, row.current_build, row.target_build) == (
        "A-BEHIND-NEW",
        "INV-1",
        "North",
        "CZ5.OLD",
        "CZ5.NEW",
    )
    assert row.model.endswith("Core-Z5")
    assert row.patch_age_days == (WINTER_SEND.date() - dt.date(2025, 9, 5)).days
    assert row.days_behind == 14
    assert row.url == f"https://fleet.example.org/admin/devices/device/{fleet_of_a['behind_new'].pk}/change/"


def test_the_subject_says_the_organisation_and_the_essential(org_a, fleet_of_a):
    rendered = digests.render_digest(build(subscribe(org_a)))
    assert rendered.subject == "[FleetPatch] Ministère A: 1 device newly behind, 1 critical, 1 silent"


def test_the_email_has_text_and_html_without_images_or_scripts(org_a, fleet_of_a):
    rendered = digests.render_digest(build(subscribe(org_a)))
    for part in (rendered.text, rendered.html):
        assert "A-BEHIND-NEW" in part
        assert "Newly critical" in part
    lowered = rendered.html.lower()
    assert "<script" not in lowered and "<img" not in lowered and "<link" not in lowered and "<style" not in lowered


def test_the_rows_are_capped_and_the_rest_is_a_link_to_the_filtered_device_list(org_a, settings):
    settings.DIGEST_MAX_ROWS = 2
    for index in range(5):
        newly(DeviceFactory(organisation=org_a, compliance_status="behind", serial=f"CAP-{index}"), "behind", IN_WINDOW)
    subscription = subscribe(org_a)
    digest = build(subscription)
    section = digest.sections[0]

    assert (section.total, len(section.rows), section.overflow) == (5, 2, 3)
    assert f"organisation__id__exact={org_a.pk}" in section.more_url
    assert "compliance_status__exact=behind" in section.more_url
    rendered = digests.render_digest(digest)
    assert "and 3 more devices" in rendered.text and section.more_url in rendered.text
    assert section.more_url.replace("&", "&amp;") in rendered.html


# Subscription fleets, counts, newcomer counts, one query per reported status (4), policy, end of support,
# waivers, recipients: whatever the number of devices.
DIGEST_QUERIES = 11


def test_the_number_of_queries_does_not_depend_on_the_size_of_the_fleet(
    org_a, fleet_of_a, django_assert_max_num_queries
):
    subscription = subscribe(org_a)

    def build_and_render() -> digests.Digest:
        digest = build(subscription)
        digests.render_digest(digest)
        return digest

    with django_assert_max_num_queries(DIGEST_QUERIES):
        small = build_and_render()
    fleet = FleetFactory(organisation=org_a)
    for index in range(60):
        status = ("behind", "critical", "unsupported", "silent")[index % 4]
        device = DeviceFactory(organisation=org_a, fleet=fleet, compliance_status=status, serial=f"BIG-{index}")
        newly(device, status, IN_WINDOW)
    with django_assert_max_num_queries(DIGEST_QUERIES):
        large = build_and_render()
    assert (small.newly_total, large.newly_total) == (3, 63)


def test_expiring_waivers_and_models_reaching_end_of_support_are_reported(org_a, fleet_of_a):
    device = fleet_of_a["waived"]
    Waiver.objects.create(
        organisation=org_a,
        device=device,
        reason="Field trial",
        granted_at=WINTER_SEND - dt.timedelta(days=60),
        expires_at=WINTER_SEND + dt.timedelta(days=3),
    )
    ending = DeviceModelFactory(name="Old-X1", security_support_until=WINTER_SEND.date() + dt.timedelta(days=30))
    DeviceFactory(organisation=org_a, model=ending, compliance_status="up_to_date")
    digest = build(subscribe(org_a))

    assert [waiver["reason"] for waiver in digest.expiring_waivers] == ["Field trial"]
    assert [model["device_count"] for model in digest.end_of_support] == [1]
    assert "Old-X1" in digest.end_of_support[0]["model"]


# --- Nothing new, nothing sent ---------------------------------------------------------------------------------


def test_a_window_without_news_is_empty(org_a, fleet_of_a):
    digest = build(subscribe(org_a), window_start=WINTER_SEND, window_end=WINTER_SEND + dt.timedelta(hours=1))
    assert digest.is_empty


@time_machine.travel(WINTER_SEND, tick=False)
def test_nothing_is_sent_when_nothing_is_new_and_the_period_is_recorded_as_skipped(
    org_a, django_capture_on_commit_callbacks
):
    subscription = subscribe(org_a)
    with django_capture_on_commit_callbacks(execute=True):
        digests_dispatch()
    assert mail.outbox == []
    delivery = DigestDelivery.objects.get(subscription=subscription)
    assert delivery.status == DeliveryStatus.SKIPPED_EMPTY
    assert delivery.period == WINTER_SEND


@time_machine.travel(WINTER_SEND, tick=False)
def test_send_when_empty_sends_a_digest_that_says_nothing_is_new(org_a, django_capture_on_commit_callbacks):
    subscribe(org_a, send_when_empty=True)
    with django_capture_on_commit_callbacks(execute=True):
        digests_dispatch()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "[FleetPatch] Ministère A: nothing new"


# --- Time zones and send times -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (dt.datetime(2026, 1, 15, 7, 0, tzinfo=UTC), dt.datetime(2026, 1, 15, 7, 0, tzinfo=UTC)),
        (dt.datetime(2026, 1, 15, 6, 59, tzinfo=UTC), dt.datetime(2026, 1, 14, 7, 0, tzinfo=UTC)),
        # Summer time (UTC+2): 08:00 in Paris is 06:00 UTC.
        (dt.datetime(2026, 7, 15, 6, 0, tzinfo=UTC), dt.datetime(2026, 7, 15, 6, 0, tzinfo=UTC)),
        (dt.datetime(2026, 7, 15, 5, 59, tzinfo=UTC), dt.datetime(2026, 7, 14, 6, 0, tzinfo=UTC)),
        # The night clocks go forward (29 March 2026): the day before was still winter time.
        (dt.datetime(2026, 3, 29, 5, 0, tzinfo=UTC), dt.datetime(2026, 3, 28, 7, 0, tzinfo=UTC)),
        (dt.datetime(2026, 3, 29, 6, 0, tzinfo=UTC), dt.datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
    ],
)
def test_a_daily_digest_at_eight_in_paris_follows_daylight_saving_time(db, moment, expected):
    subscription = AlertSubscription(time_zone="Europe/Paris", send_at=dt.time(8, 0))
    assert subscription.latest_occurrence(moment) == expected


def test_a_weekly_digest_is_due_on_its_day_of_the_week(db):
    subscription = AlertSubscription(
        frequency=DigestFrequency.WEEKLY, weekday=0, time_zone="America/New_York", send_at=dt.time(9, 30)
    )
    # Thursday 15 January 2026: the latest Monday 09:30 in New York (UTC-5) was 12 January, 14:30 UTC.
    assert subscription.latest_occurrence(WINTER_SEND) == dt.datetime(2026, 1, 12, 14, 30, tzinfo=UTC)


def test_a_cron_digest_follows_its_expression_in_its_time_zone(db):
    subscription = AlertSubscription(frequency=DigestFrequency.CRON, cron="0 7 * * 1-5", time_zone="Europe/Paris")
    # Sunday 18 January 2026, noon: the latest weekday 07:00 in Paris was Friday the 16th, 06:00 UTC.
    assert subscription.latest_occurrence(dt.datetime(2026, 1, 18, 12, 0, tzinfo=UTC)) == dt.datetime(
        2026, 1, 16, 6, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("fields", "error_field"),
    [
        ({"frequency": DigestFrequency.CRON, "cron": "61 * * * *"}, "cron"),
        ({"frequency": DigestFrequency.CRON, "cron": "0 8 * *"}, "cron"),
        ({"time_zone": "Europe/Pariss"}, "time_zone"),
        ({"extra_recipients": "ops@example.org\nnot an address"}, "extra_recipients"),
    ],
)
def test_a_subscription_refuses_a_bad_cron_time_zone_or_address(org_a, fields, error_field):
    with pytest.raises(ValidationError) as error:
        subscribe(org_a, **fields)
    assert error_field in error.value.message_dict


def test_the_dispatcher_finds_a_paris_subscription_due_at_seven_utc_in_winter_not_before(
    org_a, django_capture_on_commit_callbacks
):
    subscription = subscribe(org_a, created_at=PREVIOUS_SEND + dt.timedelta(hours=5), send_when_empty=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert digests_dispatch(now=WINTER_SEND - dt.timedelta(hours=1)).created == []
        created = digests_dispatch(now=WINTER_SEND).created
    assert DigestDelivery.objects.get(pk__in=created).period == WINTER_SEND
    assert subscription.deliveries.count() == 1


# --- Exactly once ------------------------------------------------------------------------------------------


@time_machine.travel(WINTER_SEND, tick=False)
def test_a_due_digest_is_sent_once_as_one_message_per_recipient_each_with_only_its_own_link(
    org_a, fleet_of_a, django_capture_on_commit_callbacks
):
    MembershipFactory(
        organisation=org_a, role=Role.MANAGER, user=UserFactory(username="boss", email="Boss@Example.org")
    )
    MembershipFactory(organisation=org_a, role=Role.VIEWER, user=UserFactory(username="intern"))
    subscription = subscribe(org_a)
    with django_capture_on_commit_callbacks(execute=True):
        digests_dispatch()

    assert [message.to for message in mail.outbox] == [["boss@example.org"], ["ops@example.org"]]
    links = {
        address: digests.unsubscribe_url(subscription_id=subscription.pk, address=address)
        for address in ("boss@example.org", "ops@example.org")
    }
    for message in mail.outbox:
        (address,) = message.to
        (other,) = set(links) - {address}
        assert message.subject.startswith("[FleetPatch] Ministère A: 1 device newly behind")
        parsed = email.message_from_bytes(message.message().as_bytes())
        assert parsed.get_content_type() == "multipart/alternative"
        assert [part.get_content_type() for part in parsed.get_payload()] == ["text/plain", "text/html"]
        # A long header is folded onto a continuation line; the unfolded value is the link alone.
        assert parsed["List-Unsubscribe"].strip() == f"<{links[address]}>"
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        html = message.alternatives[0][0]
        assert links[address] in message.body and links[address] in html
        assert other not in message.body and other not in html  # nobody else's address,
        assert links[other] not in message.body and links[other] not in html  # nor link
        assert digests.LINK_MARK not in message.body + html and digests.ADDRESS_MARK not in message.body + html
    delivery = DigestDelivery.objects.get(subscription=subscription)
    assert (delivery.status, delivery.attempts, delivery.recipients) == (
        DeliveryStatus.SENT,
        1,
        ["boss@example.org", "ops@example.org"],
    )
    assert sorted(delivery.messages.values_list("address", "status", "attempts")) == [
        ("boss@example.org", MessageStatus.SENT, 1),
        ("ops@example.org", MessageStatus.SENT, 1),
    ]
    assert (delivery.window_start, delivery.window_end) == (PREVIOUS_SEND, WINTER_SEND)
    subscription.refresh_from_db()
    assert subscription.last_sent_period == WINTER_SEND


@time_machine.travel(WINTER_SEND, tick=False)
def test_a_duplicated_dispatch_and_a_duplicated_send_task_send_nothing_more(
    org_a, fleet_of_a, django_capture_on_commit_callbacks
):
    subscribe(org_a)
    with django_capture_on_commit_callbacks(execute=True):
        first = digests_dispatch()
        second = digests_dispatch()
    assert len(first.created) == 1
    assert second.created == []
    assert digest_delivery_send(delivery_id=first.created[0]) == "not claimed"
    assert len(mail.outbox) == 1


@time_machine.travel(WINTER_SEND, tick=False)
def test_the_next_digest_starts_where_the_last_one_ended(org_a, fleet_of_a, django_capture_on_commit_callbacks):
    subscription = subscribe(org_a)
    with django_capture_on_commit_callbacks(execute=True):
        digests_dispatch()
    later = WINTER_SEND + dt.timedelta(days=1)
    newly(
        DeviceFactory(organisation=org_a, serial="A-NEXT-DAY", compliance_status="behind"),
        "behind",
        later - dt.timedelta(hours=1),
    )
    with time_machine.travel(later, tick=False), django_capture_on_commit_callbacks(execute=True):
        digests_dispatch()

    assert len(mail.outbox) == 2
    second = subscription.deliveries.get(period=later)
    assert second.window_start == WINTER_SEND
    assert "A-NEXT-DAY" in mail.outbox[1].body
    assert "A-BEHIND-NEW" not in mail.outbox[1].body
    assert "(+1)" in mail.outbox[1].body  # behind: 2 → 3 since the previous digest


class FlakyBackend(LocmemBackend):
    """Refuses the first ``failures`` messages like a greylisting server (451), then delivers."""

    failures = 0

    def send_messages(self, messages):
        if FlakyBackend.failures > 0:
            FlakyBackend.failures -= 1
            raise smtplib.SMTPDataError(451, b"4.7.1 Try again later")
        return super().send_messages(messages)


@time_machine.travel(WINTER_SEND, tick=False)
def test_an_smtp_refusal_is_retried_and_the_digest_delivered_once(
    org_a, fleet_of_a, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "tests.alerts.test_digests.FlakyBackend"
    FlakyBackend.failures = 2
    subscription = subscribe(org_a)
    with django_capture_on_commit_callbacks(execute=True):
        digests_dispatch()  # eager tasks: Celery runs the retries inline

    assert len(mail.outbox) == 1
    delivery = subscription.deliveries.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 3)
    assert "451" in delivery.error  # the last refusal stays on record


@time_machine.travel(WINTER_SEND, tick=False)
def test_a_server_that_keeps_refusing_leaves_a_failed_delivery_with_the_reason(
    org_a, fleet_of_a, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "tests.alerts.test_digests.FlakyBackend"
    settings.DIGEST_MAX_ATTEMPTS = 3
    FlakyBackend.failures = 10
    subscription = subscribe(org_a)
    with django_capture_on_commit_callbacks(execute=True):
        digests_dispatch()

    delivery = subscription.deliveries.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 3)
    assert "SMTPDataError" in delivery.error and "451" in delivery.error
    assert mail.outbox == []


def test_a_claim_lost_with_its_worker_is_never_resent_but_marked_failed(org_a, fleet_of_a, settings):
    settings.DIGEST_STALE_CLAIM_MINUTES = 30
    subscription = subscribe(org_a)
    result = digests_dispatch(now=WINTER_SEND, enqueue=False)
    # A worker claims the row, then dies before it could record the outcome.
    DigestDelivery.objects.filter(pk=result.created[0]).update(
        status=DeliveryStatus.SENDING, claimed_at=WINTER_SEND, attempts=1
    )
    assert digest_delivery_send(delivery_id=result.created[0], now=WINTER_SEND) == "not claimed"

    later = digests_dispatch(now=WINTER_SEND + dt.timedelta(minutes=31), enqueue=False)
    assert later.lost == 1
    delivery = subscription.deliveries.get()
    assert delivery.status == DeliveryStatus.FAILED
    assert "lost" in delivery.error
    assert mail.outbox == []


def test_a_claimed_period_whose_task_was_lost_is_enqueued_again(org_a, settings):
    subscription = subscribe(org_a)
    first = digests_dispatch(now=WINTER_SEND, enqueue=False)
    later = digests_dispatch(
        now=WINTER_SEND + dt.timedelta(minutes=settings.DIGEST_STALE_CLAIM_MINUTES + 1), enqueue=False
    )
    assert later.created == []
    assert later.requeued == first.created
    assert subscription.deliveries.count() == 1


# --- Language ----------------------------------------------------------------------------------------------


@time_machine.travel(WINTER_SEND, tick=False)
def test_a_french_subscription_gets_its_digest_in_french(org_a, fleet_of_a, django_capture_on_commit_callbacks):
    subscribe(org_a, language="fr")
    with django_capture_on_commit_callbacks(execute=True):
        digests_dispatch()
    message = mail.outbox[0]
    assert message.extra_headers["Content-Language"] == "fr"
    assert 'lang="fr"' in message.alternatives[0][0]
    assert "Nouvellement en retard" in message.body
    assert message.subject == "[FleetPatch] Ministère A : 1 appareil nouvellement en retard, 1 critique, 1 silencieux"


# --- Operations: command and admin -------------------------------------------------------------------------


@time_machine.travel(WINTER_SEND, tick=False)
def test_send_digests_dry_run_shows_what_it_would_send_and_records_nothing(org_a, fleet_of_a, capsys):
    subscribe(org_a)
    call_command("send_digests", "--dry-run")
    out = capsys.readouterr().out
    assert "would send" in out and "1 device newly behind" in out and "ops@example.org" in out
    assert not DigestDelivery.objects.exists()
    assert mail.outbox == []


@time_machine.travel(WINTER_SEND + dt.timedelta(hours=3), tick=False)
def test_send_digests_due_now_sends_the_current_period_once(org_a, fleet_of_a, capsys):
    subscription = subscribe(org_a)
    # The 15 January digest already went out at 08:00 Paris time.
    DigestDelivery.objects.create(
        subscription=subscription, period=WINTER_SEND, status=DeliveryStatus.SENT, window_end=WINTER_SEND
    )
    call_command("send_digests")
    assert mail.outbox == []  # not due: today's period is done

    call_command("send_digests", "--due-now", "--subscription", str(subscription.pk))
    call_command("send_digests", "--due-now", "--subscription", str(subscription.pk))
    assert len(mail.outbox) <= 1
    assert subscription.deliveries.filter(period=WINTER_SEND + dt.timedelta(days=1)).count() == 1


def test_send_digests_refuses_an_unknown_subscription(db):
    with pytest.raises(CommandError, match="No alert subscription"):
        call_command("send_digests", "--subscription", "999999")


def test_the_admin_preview_renders_the_html_digest_for_its_organisation_only(
    client, org_a, fleet_of_a, manager_a, manager_b
):
    subscription = subscribe(org_a)
    url = reverse("admin:alerts_alertsubscription_preview", args=[subscription.pk])
    client.force_login(manager_a)
    response = client.get(url)
    assert response.status_code == 200
    assert "A-BEHIND-NEW" in response.content.decode() or "No device newly needs attention" in response.content.decode()
    assert not DigestDelivery.objects.exists()

    client.force_login(manager_b)
    assert client.get(url).status_code in (403, 404)


def test_the_admin_test_action_sends_to_the_user_who_clicked_and_consumes_no_period(client, org_a, manager_a):
    subscription = subscribe(org_a)
    client.force_login(manager_a)
    response = client.post(
        reverse("admin:alerts_alertsubscription_changelist"),
        {"action": "send_test_digest", "_selected_action": [subscription.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert [message.to for message in mail.outbox] == [[manager_a.email]]
    assert not DigestDelivery.objects.exists()


def test_the_admin_refuses_fleets_of_another_organisation(client, org_a, org_b, manager_a):
    foreign = FleetFactory(organisation=org_b)
    client.force_login(manager_a)
    response = client.post(
        reverse("admin:alerts_alertsubscription_add"),
        {
            "organisation": org_a.pk,
            "name": "Sneaky",
            "is_active": "on",
            "fleets": [foreign.pk],
            "language": "en",
            "send_to_managers": "on",
            "unsubscribed": "[]",
            "frequency": "daily",
            "weekday": 0,
            "send_at": "08:00",
            "time_zone": "Europe/Paris",
        },
    )
    assert response.status_code == 200  # the form again, with an error
    assert not AlertSubscription.objects.exists()


def test_the_dispatcher_is_scheduled_at_the_top_of_every_hour_in_django_celery_beat(db):
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="fleet.dispatch_digests")
    assert task.enabled
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("0", "*", "UTC")


def test_a_digest_that_fails_before_sending_gives_its_claim_back(org_a, fleet_of_a, settings):
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [], "APP_DIRS": False}]  # its templates vanish
    subscription = subscribe(org_a)
    created = digests_dispatch(now=WINTER_SEND, enqueue=False).created
    with pytest.raises(Exception, match="digest"):
        digest_delivery_send(delivery_id=created[0], now=WINTER_SEND)
    delivery = subscription.deliveries.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.RETRYING, 1)
    assert "TemplateDoesNotExist" in delivery.error
    assert mail.outbox == []


def test_a_period_that_used_up_its_attempts_is_not_claimed_again_and_ends_failed(org_a, settings):
    settings.DIGEST_MAX_ATTEMPTS = 2
    subscription = subscribe(org_a)
    created = digests_dispatch(now=WINTER_SEND, enqueue=False).created
    DigestDelivery.objects.filter(pk=created[0]).update(status=DeliveryStatus.RETRYING, attempts=2, error="451")
    assert digest_delivery_send(delivery_id=created[0], now=WINTER_SEND) == "not claimed"
    digests_dispatch(now=WINTER_SEND + dt.timedelta(minutes=5), enqueue=False)
    delivery = subscription.deliveries.get()
    assert (delivery.status, delivery.error) == (DeliveryStatus.FAILED, "451")
