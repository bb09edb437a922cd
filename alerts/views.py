"""Pages reached from an email, without logging in."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from alerts import digests
from alerts.choices import UnsubscribeVia
from alerts.models import AlertSubscription
from alerts.services import subscription_unsubscribe
from common.client import client_address

TEMPLATE = "alerts/unsubscribe.html"


def _page(request: HttpRequest, state: str, *, status: int = 200, **context: object) -> HttpResponse:
    context = {"state": state, "max_age_days": settings.DIGEST_UNSUBSCRIBE_MAX_AGE_DAYS, **context}
    return render(request, TEMPLATE, context, status=status)


# The signed token is the credential, and unsubscribing is harmless and idempotent: no CSRF cookie, so the
# one-click unsubscribe of RFC 8058 (a POST from the mail provider, no cookies) works, and the page's button too.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, subscription_id: int, token: str) -> HttpResponse:
    """GET asks for confirmation, POST unsubscribes: mail scanners that follow every link (GET) must not
    unsubscribe anybody. The token names the subscription and the address and expires after
    DIGEST_UNSUBSCRIBE_MAX_AGE_DAYS; a token of another subscription, an expired or an altered one is refused.
    A POST carrying ``List-Unsubscribe=One-Click`` is a mail client's one-click unsubscribe (RFC 8058)."""
    try:
        link = digests.read_unsubscribe_token(token, subscription_id=subscription_id)
        subscription = AlertSubscription.objects.select_related("organisation").get(pk=subscription_id)
    except signing.SignatureExpired:
        return _page(request, "expired", status=410)
    except digests.ForeignUnsubscribeToken:
        return _page(request, "foreign", status=400)
    except (signing.BadSignature, AlertSubscription.DoesNotExist):
        return _page(request, "invalid", status=400)
    with translation.override(subscription.language):
        if request.method != "POST":
            return _page(request, "confirm", subscription=subscription, address=link.address)
        one_click = request.POST.get("List-Unsubscribe") == "One-Click"
        subscription, _changed = subscription_unsubscribe(
            subscription_id=subscription.pk,
            address=link.address,
            via=UnsubscribeVia.ONE_CLICK if one_click else UnsubscribeVia.PAGE,
            link_signed_at=link.signed_at,
            client_address=client_address(request),
            user_agent=request.headers.get("User-Agent", ""),
        )
        return _page(request, "done", subscription=subscription, address=link.address)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def legacy_unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """A link of a digest sent before each recipient got their own message: every recipient's link was in every
    copy, so holding one proves nothing. Refused, with how to unsubscribe now (docs/digests.md)."""
    return _page(request, "legacy", status=410)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe_preview(request: HttpRequest) -> HttpResponse:
    """The link shown by the admin's Preview: it names nobody and unsubscribes nobody."""
    return _page(request, "preview")
