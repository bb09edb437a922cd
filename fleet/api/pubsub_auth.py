"""Authentication of Google Pub/Sub push requests, on a client's own push endpoint.

A push subscription cannot send ``Authorization: Bearer <FleetPatch token>``: it calls the URL it was given,
optionally with Google's own signed OIDC token. So the push endpoint (``/api/v1/ingest/amapi/push/<push id>/``)
names its client by a random public id, and the request proves it with either

* the client's push secret in the URL (``?token=...``), stored only as its hash (``fleet.models.hash_token``),
  compared with ``hmac.compare_digest``, revocable and rotatable (``fleet.services``); or
* Google's OIDC token (``Authorization: Bearer <JWT>``): RS256, signed by a key of the JWKS configured in
  settings (``PUBSUB_OIDC_JWKS_FILE`` or ``PUBSUB_OIDC_JWKS_URL``, cached), issued by Google, for the
  client's audience, to the client's service account with a verified email.

A Bearer value here is never looked up as a FleetPatch token.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import urllib.request
from typing import Any

import jwt
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import gettext
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from common.cache import CACHE_UNAVAILABLE
from fleet.api.authentication import LAST_USED_RESOLUTION, ApiClientPrincipal
from fleet.models import ApiClient, hash_token

logger = logging.getLogger(__name__)

GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
_CACHE_KEY = "fleetpatch:pubsub-oidc-jwks:"
# An unknown key id refetches the keys (Google rotates them), but not more often than this.
_REFETCH_AFTER_SECONDS = 300


class OidcKeysUnavailable(exceptions.APIException):
    """Google's signing keys could not be had: the token can be neither accepted nor refused. Pub/Sub retries."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "oidc_keys_unavailable"


def _jwks_source() -> str:
    return settings.PUBSUB_OIDC_JWKS_FILE or settings.PUBSUB_OIDC_JWKS_URL


def _load_jwks(source: str) -> dict:
    try:
        if source == settings.PUBSUB_OIDC_JWKS_FILE:
            with open(source, encoding="utf-8") as handle:
                document = json.load(handle)
        else:
            request = urllib.request.Request(source, headers={"Accept": "application/json"})  # noqa: S310 - settings
            with urllib.request.urlopen(request, timeout=settings.PUBSUB_OIDC_JWKS_TIMEOUT) as response:  # noqa: S310
                document = json.loads(response.read(1024 * 1024))
    except (OSError, ValueError) as error:
        logger.warning("Pub/Sub OIDC keys unavailable from %s: %s", source, error)
        raise OidcKeysUnavailable(
            gettext("Google's token signing keys could not be read (%(source)s); retry in a moment.")
            % {"source": source}
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise OidcKeysUnavailable(gettext("%(source)s is not a JSON Web Key Set.") % {"source": source})
    return document


def _cached_jwks(*, refresh: bool = False) -> tuple[dict, float]:
    """The key set and when it was read; from the cache (bounded lifetime) unless ``refresh``."""
    source = _jwks_source()
    key = _CACHE_KEY + hash_token(source)
    entry = None
    if not refresh:
        try:
            entry = cache.get(key)
        except CACHE_UNAVAILABLE:  # a cache outage costs a read of the keys, not the request
            entry = None
    if entry is None:
        entry = {"jwks": _load_jwks(source), "at": time.time()}
        try:
            cache.set(key, entry, timeout=settings.PUBSUB_OIDC_JWKS_CACHE_SECONDS)
        except CACHE_UNAVAILABLE:
            pass
    return entry["jwks"], entry["at"]


def _signing_key(kid: str) -> Any:
    jwks, fetched_at = _cached_jwks()
    found = _find_key(jwks, kid)
    if found is None and time.time() - fetched_at > _REFETCH_AFTER_SECONDS:
        found = _find_key(_cached_jwks(refresh=True)[0], kid)
    if found is None:
        raise exceptions.AuthenticationFailed(gettext("The OIDC token is signed by an unknown key."))
    return found


def _find_key(jwks: dict, kid: str) -> Any:
    for item in jwks["keys"]:
        if isinstance(item, dict) and item.get("kid") == kid:
            try:
                return jwt.PyJWK(item).key
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                return None
    return None


def verify_google_oidc_token(token: str, *, audience: str, service_account: str) -> dict:
    """The claims of Google's signed OIDC token, once its signature, issuer, audience, times and email are
    checked; AuthenticationFailed (401) naming what is wrong otherwise."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise exceptions.AuthenticationFailed(gettext("The OIDC token is not a JSON Web Token.")) from None
    if header.get("alg") != "RS256" or not isinstance(header.get("kid"), str):
        raise exceptions.AuthenticationFailed(gettext("The OIDC token must be RS256-signed and name its key."))
    key = _signing_key(header["kid"])
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=["RS256"],
            audience=audience,
            issuer=GOOGLE_ISSUERS,
            leeway=settings.PUBSUB_OIDC_LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "iss", "aud", "email"]},
        )
    except jwt.ExpiredSignatureError:
        raise exceptions.AuthenticationFailed(gettext("The OIDC token has expired.")) from None
    except jwt.InvalidAudienceError:
        raise exceptions.AuthenticationFailed(
            gettext("The OIDC token is for another audience; this endpoint expects %(audience)s.")
            % {"audience": audience}
        ) from None
    except jwt.InvalidIssuerError:
        raise exceptions.AuthenticationFailed(gettext("The OIDC token was not issued by Google.")) from None
    except jwt.InvalidSignatureError:
        raise exceptions.AuthenticationFailed(gettext("The OIDC token's signature is invalid.")) from None
    except jwt.PyJWTError as error:
        raise exceptions.AuthenticationFailed(
            gettext("The OIDC token is invalid: %(reason)s") % {"reason": str(error)}
        ) from None
    email = claims.get("email")
    if not isinstance(email, str) or email.lower() != service_account.lower():
        raise exceptions.AuthenticationFailed(gettext("The OIDC token is not for this endpoint's service account."))
    if claims.get("email_verified") is not True:
        raise exceptions.AuthenticationFailed(gettext("The OIDC token's email is not verified."))
    return claims


class PubSubPushAuthentication(BaseAuthentication):
    """The client named by the URL's push id, proven by its push secret (``?token=``) or Google's OIDC token."""

    def authenticate(self, request: Request) -> tuple[ApiClientPrincipal, ApiClient]:
        push_id = (request.parser_context or {}).get("kwargs", {}).get("push_id", "")
        client = ApiClient.objects.filter(push_id=push_id).first() if push_id else None
        if client is None:
            raise exceptions.AuthenticationFailed(gettext("No Pub/Sub push endpoint has this id."))
        now = timezone.now()
        if client.revoked_at is not None:
            raise exceptions.AuthenticationFailed(gettext("This API client was revoked."))
        if client.expires_at is not None and client.expires_at <= now:
            raise exceptions.AuthenticationFailed(gettext("This API client has expired."))
        secret = request.query_params.get("token")
        parts = get_authorization_header(request).split()
        if secret is not None:
            self._check_secret(client, secret)
        elif len(parts) == 2 and parts[0].lower() == b"bearer":
            if not client.push_service_account:
                raise exceptions.AuthenticationFailed(
                    gettext("This push endpoint accepts no OIDC token: give its API client a push service account.")
                )
            try:
                token = parts[1].decode("ascii")
            except UnicodeDecodeError:
                raise exceptions.AuthenticationFailed(gettext("The OIDC token is not a JSON Web Token.")) from None
            verify_google_oidc_token(
                token, audience=client.push_token_audience, service_account=client.push_service_account
            )
        else:
            raise exceptions.AuthenticationFailed(
                gettext(
                    "Authenticate with the push secret (?token=...) or Google's OIDC token (Authorization: Bearer)."
                )
            )
        if client.last_used_at is None or now - client.last_used_at >= LAST_USED_RESOLUTION:
            ApiClient.objects.filter(pk=client.pk).update(last_used_at=now)
        return ApiClientPrincipal(client), client

    @staticmethod
    def _check_secret(client: ApiClient, secret: str) -> None:
        if not client.push_secret_hash:
            raise exceptions.AuthenticationFailed(gettext("This push endpoint's secret was revoked."))
        if not hmac.compare_digest(client.push_secret_hash, hash_token(secret)):
            raise exceptions.AuthenticationFailed(gettext("Invalid push secret."))

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="fleetpatch-pubsub"'


class PubSubPushScheme(OpenApiAuthenticationExtension):
    """Describes :class:`PubSubPushAuthentication` in the OpenAPI schema."""

    target_class = "fleet.api.pubsub_auth.PubSubPushAuthentication"
    name = "pubsubPushSecret"

    def get_security_definition(self, auto_schema: Any) -> dict:
        return {
            "type": "apiKey",
            "in": "query",
            "name": "token",
            "description": gettext(
                "The API client's push secret (create_api_client --pubsub-push), or instead Google's signed OIDC "
                "token for the client's service account: `Authorization: Bearer <JWT>`."
            ),
        }
