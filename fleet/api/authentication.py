"""API authentication for machines: ``Authorization: Bearer <token>`` of an ApiClient.

Tokens are stored as SHA-256 hashes (``fleet.models.hash_token``): the lookup is by hash, and the
stored hash is compared with ``hmac.compare_digest`` so the comparison time does not depend on how
much of it matches.
"""

from __future__ import annotations

import datetime as dt
import hmac

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from fleet.models import ApiClient, hash_token

# Recording last use on every request would turn every read into a write.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


class ApiClientPrincipal:
    """Stands in for ``request.user`` when an MDM calls: it is authenticated, but it is not a person."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.organisation_id = client.organisation_id

    def __str__(self) -> str:
        return f"api-client:{self.client.pk}:{self.client.token_prefix}"


class BearerTokenAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[ApiClientPrincipal, ApiClient] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed(_("Invalid Authorization header: expected 'Bearer <token>'."))
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed(_("Invalid token.")) from None
        digest = hash_token(token)
        client = ApiClient.objects.filter(token_hash=digest).first()
        if client is None or not hmac.compare_digest(client.token_hash, digest):
            raise AuthenticationFailed(_("Invalid token."))
        now = timezone.now()
        if client.revoked_at is not None:
            raise AuthenticationFailed(_("This token was revoked."))
        if client.expires_at is not None and client.expires_at <= now:
            raise AuthenticationFailed(_("This token has expired."))
        if client.last_used_at is None or now - client.last_used_at >= LAST_USED_RESOLUTION:
            ApiClient.objects.filter(pk=client.pk).update(last_used_at=now)
        return ApiClientPrincipal(client), client

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="fleetpatch"'
