"""Pages reached from an email, without logging in."""

from __future__ import annotations

from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from alerts import digests
from alerts.models import AlertSubscription
from alerts.services import subscription_unsubscribe


# The signed token is the credential, and unsubscribing is harmless and idempotent: no CSRF cookie, so the
# confirmation also works from a mail client's one-click unsubscribe (RFC 8058) and without cookies.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks for confirmation, POST unsubscribes: mail scanners that follow every link (GET) must not
    unsubscribe anybody. The signed token names the subscription and the address; no account is needed."""
    try:
        subscription_id, address = digests.read_unsubscribe_token(token)
        subscription = AlertSubscription.objects.select_related("organisation").get(pk=subscription_id)
    except (signing.BadSignature, AlertSubscription.DoesNotExist):
        return render(request, "alerts/unsubscribe.html", {"invalid": True}, status=400)
    done = False
    if request.method == "POST":
        subscription = subscription_unsubscribe(subscription_id=subscription.pk, address=address)
        done = True
    return render(request, "alerts/unsubscribe.html", {"subscription": subscription, "address": address, "done": done})
