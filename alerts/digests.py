"""Email digests: what one subscription's digest says (selectors) and how it reads (rendering).

A digest covers a window of time, ``(window_start, window_end]``. Building it is a fixed number of queries,
whatever the size of the organisation (see :func:`build_digest`):

1. counts of the subscription's devices by compliance status and by battery status (one GROUP BY);
2. how many devices *newly* need attention: devices whose current status is one the subscription reports and
   which entered it during the window (a StatusChange row of the window into that status), one GROUP BY;
3. for each reported status with newcomers, the first ``DIGEST_MAX_ROWS`` of them, with their fleet, model and
   builds joined (one query per status, four at most);
4. the models of those devices reaching the end of security support within the policy's warning window, and
   the waivers expiring within ``DIGEST_WAIVER_NOTICE_DAYS`` (one query each, plus the policy).

Waived devices are left out everywhere, and nothing is read outside the subscription's organisation (and its
fleets, when it names some).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.html import escape
from django.utils.translation import gettext, ngettext

from alerts.models import AlertSubscription
from devices.choices import BatteryStatus, ComplianceStatus
from devices.models import Device, StatusChange, Waiver
from fleet.choices import Role
from fleet.models import CompliancePolicy

# Links signed before issue #15 (one message to every recipient, every recipient's link in it, never
# expiring): their salt. They are refused (see alerts.views.legacy_unsubscribe): whoever holds one may have read it
# in a message addressed to somebody else.
LEGACY_UNSUBSCRIBE_SALT = "fleet.digest.unsubscribe"
UNSUBSCRIBE_SALT = "alerts.digest.unsubscribe.v2"
#: Stands for the recipient's own address and unsubscribe link in a digest rendered once for all recipients:
#: plain ASCII that neither escaping nor translation changes, replaced in each recipient's copy.
ADDRESS_MARK = "FLEETPATCH-RECIPIENT-ADDRESS-MARK"
LINK_MARK = "https://fleetpatch.invalid/FLEETPATCH-UNSUBSCRIBE-LINK-MARK"


# --- Links ---------------------------------------------------------------------------------------------------


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def device_admin_url(device_id: int) -> str:
    return absolute(reverse("admin:devices_device_change", args=[device_id]))


def device_list_url(subscription: AlertSubscription, fleet_ids: list[int], **filters: str) -> str:
    """The admin's device list narrowed to the subscription's scope and ``filters`` (admin lookup names)."""
    query = {"organisation__id__exact": str(subscription.organisation_id), **filters}
    # The admin filters on one fleet at a time; a digest over several fleets links to the organisation's list.
    if len(fleet_ids) == 1:
        query["fleet__id__exact"] = str(fleet_ids[0])
    return absolute(f"{reverse('admin:devices_device_changelist')}?{urlencode(query)}")


class ForeignUnsubscribeToken(signing.BadSignature):
    """A genuine token, presented at another subscription's address."""


def unsubscribe_max_age() -> dt.timedelta:
    return dt.timedelta(days=settings.DIGEST_UNSUBSCRIBE_MAX_AGE_DAYS)


def unsubscribe_token(*, subscription_id: int, address: str) -> str:
    """A signed, timestamped token naming one subscription and one address: whoever holds it may remove that
    address from that subscription, and nothing else, for DIGEST_UNSUBSCRIBE_MAX_AGE_DAYS."""
    return signing.dumps({"s": subscription_id, "a": address.lower()}, salt=UNSUBSCRIBE_SALT, compress=True)


@dataclasses.dataclass(frozen=True)
class UnsubscribeToken:
    subscription_id: int
    address: str
    signed_at: dt.datetime


def read_unsubscribe_token(token: str, *, subscription_id: int) -> UnsubscribeToken:
    """What a token presented at ``subscription_id``'s address names.

    Raises ``signing.SignatureExpired`` when older than DIGEST_UNSUBSCRIBE_MAX_AGE_DAYS,
    :class:`ForeignUnsubscribeToken` when it names another subscription, ``signing.BadSignature`` otherwise.
    """
    payload = signing.loads(token, salt=UNSUBSCRIBE_SALT, max_age=unsubscribe_max_age())
    if not isinstance(payload, dict) or not isinstance(payload.get("s"), int) or not isinstance(payload.get("a"), str):
        raise signing.BadSignature("unexpected payload")
    if payload["s"] != subscription_id:
        raise ForeignUnsubscribeToken("another subscription's token")
    # The signature checked out, so its timestamp (the middle of "payload:timestamp:signature") is ours.
    signed_at = dt.datetime.fromtimestamp(signing.b62_decode(token.rsplit(":", 2)[-2]), tz=dt.UTC)
    return UnsubscribeToken(subscription_id=payload["s"], address=payload["a"], signed_at=signed_at)


def unsubscribe_url(*, subscription_id: int, address: str) -> str:
    token = unsubscribe_token(subscription_id=subscription_id, address=address)
    return absolute(reverse("alerts:unsubscribe", args=[subscription_id, token]))


def preview_unsubscribe_url() -> str:
    """The link the admin's Preview shows: a page saying it is a preview's; it unsubscribes nobody."""
    return absolute(reverse("alerts:unsubscribe_preview"))


# --- Recipients ----------------------------------------------------------------------------------------------


def digest_recipients(subscription: AlertSubscription) -> list[str]:
    """The addresses a digest goes to: members in the chosen roles (active accounts with an address), then the
    extra addresses, less whoever unsubscribed; lowercased, each once, in a stable order. One query."""
    wanted = {Role.MANAGER: subscription.send_to_managers, Role.VIEWER: subscription.send_to_viewers}
    roles = [role for role, chosen in wanted.items() if chosen]
    members: list[str] = []
    if roles:
        members = list(
            get_user_model()
            ._default_manager.filter(
                memberships__organisation_id=subscription.organisation_id, memberships__role__in=roles, is_active=True
            )
            .exclude(email="")
            .order_by("email")
            .values_list("email", flat=True)
        )
    unsubscribed = {address.lower() for address in subscription.unsubscribed}
    addresses = [address.lower() for address in [*members, *subscription.extra_addresses]]
    return [address for address in dict.fromkeys(addresses) if address not in unsubscribed]


# --- The digest ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DeviceRow:
    """One device of a section, as a line of the email."""

    serial: str
    asset_tag: str
    fleet: str
    model: str
    current_build: str
    target_build: str
    patch_age_days: int | None
    days_behind: int | None
    url: str


@dataclasses.dataclass(frozen=True)
class Section:
    """The devices that newly entered one status during the window."""

    status: str
    title: str
    total: int
    rows: list[DeviceRow]
    more_url: str

    @property
    def overflow(self) -> int:
        return self.total - len(self.rows)


@dataclasses.dataclass(frozen=True)
class StatusCount:
    status: str
    label: str
    count: int
    change: int | None  # None: no earlier digest to compare with


@dataclasses.dataclass
class Digest:
    """Everything one email says, before it is rendered."""

    subscription: AlertSubscription
    window_start: dt.datetime
    window_end: dt.datetime
    status_counts: list[StatusCount]
    battery_counts: list[StatusCount]
    sections: list[Section]
    end_of_support: list[dict]
    expiring_waivers: list[dict]
    battery_url: str
    #: Raw counts kept on the delivery row, so the next digest can say what changed.
    counts: dict[str, int]
    news: bool

    @property
    def newly_total(self) -> int:
        return sum(section.total for section in self.sections)

    @property
    def is_empty(self) -> bool:
        return not self.news


def _scope(subscription: AlertSubscription, fleet_ids: list[int]) -> QuerySet[Device]:
    devices = Device.objects.filter(organisation_id=subscription.organisation_id, retired_at__isnull=True)
    if fleet_ids:
        devices = devices.filter(fleet_id__in=fleet_ids)
    return devices.filter(is_waived=False)


def _newly(devices: QuerySet[Device], statuses: list[str], start: dt.datetime, end: dt.datetime) -> QuerySet[Device]:
    """Devices now in one of ``statuses`` that entered it during the window (and are still in it)."""
    entered = StatusChange.objects.filter(
        device_id=OuterRef("pk"),
        to_status=OuterRef("compliance_status"),
        changed_at__gt=start,
        changed_at__lte=end,
    )
    return devices.filter(compliance_status__in=statuses).filter(Exists(entered))


def _row(device: Device, today: dt.date) -> DeviceRow:
    return DeviceRow(
        serial=device.serial,
        asset_tag=device.asset_tag,
        fleet=device.fleet.name if device.fleet else "",
        model=str(device.model) if device.model else "",
        current_build=device.current_build.build_number if device.current_build else device.reported_build_number,
        target_build=device.latest_build.build_number if device.latest_build else "",
        patch_age_days=device.patch_age_days(today),
        days_behind=(today - device.behind_since).days if device.behind_since else None,
        url=device_admin_url(device.pk),
    )


def _labels(choices: type) -> dict[str, str]:
    return {value: str(label) for value, label in choices.choices}


def build_digest(
    subscription: AlertSubscription,
    *,
    window_start: dt.datetime,
    window_end: dt.datetime,
    previous_counts: dict[str, int] | None = None,
    max_rows: int | None = None,
) -> Digest:
    """What the digest of ``subscription`` for ``(window_start, window_end]`` says; see the module's docstring.

    Call it inside ``translation.override(subscription.language)``: section titles are translated here.
    """
    max_rows = settings.DIGEST_MAX_ROWS if max_rows is None else max_rows
    today = window_end.date()
    fleet_ids = sorted(subscription.fleets.values_list("pk", flat=True))
    devices = _scope(subscription, fleet_ids)

    # 1. Counts by status and by battery status.
    counts: dict[str, int] = {}
    for row in devices.order_by().values("compliance_status", "battery_status").annotate(n=Count("pk")):
        status_key = f"status:{row['compliance_status']}"
        battery_key = f"battery:{row['battery_status']}"
        counts[status_key] = counts.get(status_key, 0) + row["n"]
        counts[battery_key] = counts.get(battery_key, 0) + row["n"]

    def change(key: str) -> int | None:
        return None if previous_counts is None else counts.get(key, 0) - previous_counts.get(key, 0)

    status_labels = _labels(ComplianceStatus)
    status_counts = [
        StatusCount(status, status_labels[status], counts.get(f"status:{status}", 0), change(f"status:{status}"))
        for status in ComplianceStatus.values
    ]
    battery_labels = _labels(BatteryStatus)
    battery_counts = [
        StatusCount(status, battery_labels[status], counts.get(f"battery:{status}", 0), change(f"battery:{status}"))
        for status in (BatteryStatus.DUE, BatteryStatus.REPLACE_NOW)
    ]

    # 2. and 3. Newcomers by status, then the first rows of each.
    statuses = subscription.reported_statuses
    newly_counts: dict[str, int] = {}
    if statuses:
        newly_counts = dict(
            _newly(devices, statuses, window_start, window_end)
            .order_by()
            .values_list("compliance_status")
            .annotate(n=Count("pk"))
        )
    titles = {
        ComplianceStatus.BEHIND: gettext("Newly behind"),
        ComplianceStatus.CRITICAL: gettext("Newly critical"),
        ComplianceStatus.UNSUPPORTED: gettext("Newly unsupported"),
        ComplianceStatus.SILENT: gettext("Newly silent"),
    }
    sections: list[Section] = []
    for status in statuses:
        total = newly_counts.get(status, 0)
        if not total:
            continue
        rows = (
            _newly(devices, [status], window_start, window_end)
            .select_related("fleet", "model__manufacturer", "current_build", "latest_build")
            .order_by(F("behind_since").asc(nulls_last=True), "serial")[:max_rows]
        )
        sections.append(
            Section(
                status=status,
                title=titles[status],
                total=total,
                rows=[_row(device, today) for device in rows],
                more_url=device_list_url(subscription, fleet_ids, compliance_status__exact=status),
            )
        )

    # 4. Context: end of support and expiring waivers.
    end_of_support: list[dict] = []
    eos_news = False
    if subscription.report_end_of_support:
        window_days = (
            CompliancePolicy.objects.filter(organisation_id=subscription.organisation_id, fleet__isnull=True)
            .values_list("eos_warning_days", flat=True)
            .first()
        ) or CompliancePolicy._meta.get_field("eos_warning_days").default
        # From the devices' side: the organisation's index, not every device of the catalogue's models.
        models = (
            devices.filter(model__security_support_until__lte=today + dt.timedelta(days=window_days))
            .order_by("model__security_support_until", "model__name")
            .values("model_id", "model__name", "model__manufacturer__name", "model__security_support_until")
            .annotate(device_count=Count("pk"))[:max_rows]
        )
        for model in models:
            until = model["model__security_support_until"]
            end_of_support.append(
                {
                    "model": f"{model['model__manufacturer__name']} {model['model__name']}",
                    "until": until,
                    "ended": until < today,
                    "device_count": model["device_count"],
                    "url": device_list_url(subscription, fleet_ids, model__id__exact=str(model["model_id"])),
                }
            )
            # News when the model entered the warning window during this digest's window.
            eos_news |= window_start.date() < until - dt.timedelta(days=window_days) <= today

    expiring_waivers: list[dict] = []
    waiver_news = False
    if subscription.report_waivers:
        notice = dt.timedelta(days=settings.DIGEST_WAIVER_NOTICE_DAYS)
        waivers = Waiver.objects.filter(
            organisation_id=subscription.organisation_id,
            revoked_at__isnull=True,
            expires_at__gt=window_end,
            expires_at__lte=window_end + notice,
        )
        if fleet_ids:
            waivers = waivers.filter(Q(fleet_id__in=fleet_ids) | Q(device__fleet_id__in=fleet_ids))
        for waiver in waivers.select_related("device", "fleet").order_by("expires_at")[:max_rows]:
            expiring_waivers.append(
                {
                    "covers": waiver.device.serial if waiver.device else waiver.fleet.name,
                    "reason": waiver.reason,
                    "expires_at": waiver.expires_at,
                    "url": absolute(reverse("admin:devices_waiver_change", args=[waiver.pk])),
                }
            )
            # News when the expiry came within the notice period during this digest's window.
            waiver_news |= waiver.expires_at - notice > window_start

    battery_news = subscription.report_battery and any((count.change or 0) > 0 for count in battery_counts)
    return Digest(
        subscription=subscription,
        window_start=window_start,
        window_end=window_end,
        status_counts=status_counts,
        battery_counts=battery_counts if subscription.report_battery else [],
        sections=sections,
        end_of_support=end_of_support,
        expiring_waivers=expiring_waivers,
        battery_url=device_list_url(subscription, fleet_ids, battery_status__exact=BatteryStatus.REPLACE_NOW),
        counts=counts,
        news=bool(sections) or battery_news or eos_news or waiver_news,
    )


# --- Rendering -----------------------------------------------------------------------------------------------


def digest_summary(digest: Digest) -> str:
    """The essential in a few words, for the subject line: ``312 devices newly behind, 18 critical``."""
    parts: list[str] = []
    for section in digest.sections:
        # The count as the language writes it: 1,234 in English, 1 234 in French.
        count = formats.number_format(section.total, use_l10n=True, force_grouping=True)
        values = {"count": count, "status": _status_word(section.status, section.total)}
        if not parts:
            parts.append(
                ngettext("%(count)s device newly %(status)s", "%(count)s devices newly %(status)s", section.total)
                % values
            )
        else:
            parts.append(gettext("%(count)s %(status)s") % values)
    if not parts:
        return gettext("nothing new")
    return ", ".join(parts)


def _status_word(status: str, count: int) -> str:
    # Plural forms although English has one: French agrees the adjective ("18 critiques").
    return {
        ComplianceStatus.BEHIND: ngettext("behind", "behind", count),
        ComplianceStatus.CRITICAL: ngettext("critical", "critical", count),
        ComplianceStatus.UNSUPPORTED: ngettext("unsupported", "unsupported", count),
        ComplianceStatus.SILENT: ngettext("silent", "silent", count),
    }[status]


@dataclasses.dataclass(frozen=True)
class PersonalCopy:
    """One recipient's copy of a rendered digest: their address and their unsubscribe link, nobody else's."""

    address: str
    unsubscribe_url: str
    text: str
    html: str


@dataclasses.dataclass(frozen=True)
class RenderedDigest:
    """A digest rendered once for all its recipients, with marks where each copy says whose it is."""

    subject: str
    text: str
    html: str
    language: str

    def personal(self, *, address: str, unsubscribe_url: str) -> PersonalCopy:
        """The copy for ``address`` with ``unsubscribe_url``: two string replacements, no template rendered."""
        return PersonalCopy(
            address=address,
            unsubscribe_url=unsubscribe_url,
            text=self.text.replace(LINK_MARK, unsubscribe_url).replace(ADDRESS_MARK, address),
            html=self.html.replace(LINK_MARK, escape(unsubscribe_url)).replace(ADDRESS_MARK, escape(address)),
        )


def render_digest(digest: Digest) -> RenderedDigest:
    """Subject, plain text and HTML of ``digest`` in the subscription's language, rendered once for all its
    recipients: each one's copy (:meth:`RenderedDigest.personal`) carries only their own unsubscribe link."""
    subscription = digest.subscription
    with translation.override(subscription.language), timezone.override(subscription.zone):
        context = {
            "digest": digest,
            "subscription": subscription,
            "organisation": subscription.organisation,
            "summary": digest_summary(digest),
            "recipient": ADDRESS_MARK,
            "unsubscribe_url": LINK_MARK,
            "site_url": settings.SITE_URL,
            "language": subscription.language,
        }
        subject = " ".join(render_to_string("alerts/email/digest_subject.txt", context).split())
        return RenderedDigest(
            subject=subject[:255],
            text=render_to_string("alerts/email/digest.txt", context),
            html=render_to_string("alerts/email/digest.html", context),
            language=subscription.language,
        )
