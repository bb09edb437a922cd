"""Write operations on tenants, their people, their policies and their credentials."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from common.tasks import enqueue_on_commit
from fleet.choices import Role
from fleet.models import ApiClient, CompliancePolicy, Fleet, Membership, Organisation, hash_token


def api_client_create(
    *,
    organisation: Organisation,
    name: str,
    scopes: Iterable[str],
    expires_at: dt.datetime | None = None,
) -> tuple[ApiClient, str]:
    """Creates an MDM's credentials and returns them with the clear token.

    The clear token exists only in the return value: the row keeps its SHA-256 hash and an
    8-character prefix, so whoever shows the token must show it now, once.
    """
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": gettext("An API client cannot expire in the past.")})
    # A list keeps the model's own validation meaningful (it rejects a bare string such as "read").
    scope_list = list(dict.fromkeys(scopes)) if isinstance(scopes, list | tuple | set | frozenset) else scopes
    token = ApiClient.generate_token()
    client = ApiClient(organisation=organisation, name=name, scopes=scope_list, expires_at=expires_at)
    client.set_token(token)
    client.full_clean()
    client.save()
    return client, token


def api_client_revoke(*, api_clients: QuerySet[ApiClient], now: dt.datetime | None = None) -> int:
    """Revokes every client of ``api_clients`` that is not revoked yet; returns how many it revoked.

    One UPDATE; a client revoked earlier keeps its first revocation time (the audit trail).
    """
    return api_clients.filter(revoked_at__isnull=True).update(revoked_at=now or timezone.now())


@transaction.atomic
def api_client_push_enable(
    *,
    api_client: ApiClient,
    service_account: str | None = None,
    audience: str | None = None,
    with_secret: bool = True,
) -> tuple[ApiClient, str | None]:
    """Gives a client its Pub/Sub push endpoint (a random public id, kept if it has one) and, with
    ``with_secret``, a new push secret (rotation: the previous one stops working at once); returns the client
    and the clear secret, which exists only in the return value (the row keeps its hash), or None.

    ``service_account`` and ``audience`` set the OIDC variant (None leaves them as they are).
    """
    changed = ["push_id"]
    if not api_client.push_id:
        api_client.push_id = secrets.token_urlsafe(16)
    secret = None
    if with_secret:
        secret = ApiClient.generate_token()
        api_client.push_secret_hash = hash_token(secret)
        changed.append("push_secret_hash")
    if service_account is not None:
        api_client.push_service_account = service_account.strip()
        changed.append("push_service_account")
    if audience is not None:
        api_client.push_audience = audience.strip()
        changed.append("push_audience")
    api_client.full_clean()
    api_client.save(update_fields=changed)
    return api_client, secret


def api_client_push_secret_revoke(*, api_clients: QuerySet[ApiClient]) -> int:
    """Revokes the push secrets of ``api_clients`` (their push URLs with ``?token=`` are refused from now on;
    an OIDC service account, if set, still authenticates); returns how many had one. One UPDATE."""
    return api_clients.exclude(push_secret_hash="").update(push_secret_hash="")


# --- Roles ------------------------------------------------------------------------------------------

ROLE_GROUP_NAMES = {Role.MANAGER: "Fleet manager", Role.VIEWER: "Fleet viewer"}


def membership_sync_groups(*, user: AbstractBaseUser) -> None:
    """Puts ``user`` in the group of their highest role (manager over viewer), out of the other, and makes
    a member staff so they can open the admin. The admin's scoping still comes from the memberships."""
    from django.contrib.auth.models import Group

    roles = set(Membership.objects.filter(user=user).values_list("role", flat=True))
    highest = Role.MANAGER if Role.MANAGER in roles else (Role.VIEWER if roles else None)
    groups = {group.name: group for group in Group.objects.filter(name__in=ROLE_GROUP_NAMES.values())}
    for role, name in ROLE_GROUP_NAMES.items():
        if name not in groups:
            continue
        if role == highest:
            user.groups.add(groups[name])
        else:
            user.groups.remove(groups[name])
    if roles and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])


@transaction.atomic
def membership_save(*, membership: Membership) -> Membership:
    """Adds or changes a member's role; their groups (and so their admin permissions) follow."""
    membership.full_clean()
    membership.save()
    membership_sync_groups(user=membership.user)
    return membership


@transaction.atomic
def memberships_delete(*, memberships: QuerySet[Membership]) -> int:
    """Removes members from organisations; each one's groups follow their remaining memberships."""
    users = list({membership.user for membership in memberships.select_related("user")})
    deleted, _ = memberships.delete()
    for user in users:
        membership_sync_groups(user=user)
    return deleted


@transaction.atomic
def api_client_update(*, api_client: ApiClient, **changes: Any) -> ApiClient:
    """Renames a client, changes its scopes or its expiry. Its organisation and token are its for life;
    revoking is :func:`api_client_revoke`."""
    for field, value in changes.items():
        setattr(api_client, field, value)
    api_client.full_clean()
    api_client.save(update_fields=[*changes] or None)
    return api_client


# --- Compliance policies ----------------------------------------------------------------------------

# The devices' recompute lives above this app (devices.compliance.tasks): named, never imported.
RECOMPUTE_ORGANISATION_TASK = "updates.recompute_organisation"


def _recompute_organisation_after_commit(organisation_id: int, reason: str) -> None:
    # With the broker down the change is committed anyway: the next sweep re-evaluates every device.
    enqueue_on_commit(RECOMPUTE_ORGANISATION_TASK, organisation_id, reason, catch_up="the next sweep")


@transaction.atomic
def policy_save(*, policy: CompliancePolicy) -> CompliancePolicy:
    """Adds or changes an organisation's (or a fleet's) thresholds; its devices are re-evaluated once the
    change is committed."""
    created = policy.pk is None
    policy.full_clean()
    policy.save()
    _recompute_organisation_after_commit(policy.organisation_id, "policy created" if created else "policy changed")
    return policy


@transaction.atomic
def policy_delete(*, policies: QuerySet[CompliancePolicy]) -> int:
    """Deletes policies (their devices fall back to the organisation's, or the defaults) and re-evaluates
    each organisation concerned once, after commit."""
    organisation_ids = sorted(set(policies.values_list("organisation_id", flat=True)))
    deleted, _ = policies.delete()
    for organisation_id in organisation_ids:
        _recompute_organisation_after_commit(organisation_id, "policy deleted")
    return deleted


# --- Organisations and fleets -----------------------------------------------------------------------


@transaction.atomic
def organisation_save(*, organisation: Organisation) -> Organisation:
    """Adds a tenant (the operators' job) or renames one."""
    organisation.full_clean()
    organisation.save()
    return organisation


@transaction.atomic
def fleet_save(*, fleet: Fleet) -> Fleet:
    """Adds or renames a fleet of an organisation."""
    fleet.full_clean()
    fleet.save()
    return fleet


@transaction.atomic
def fleets_delete(*, fleets: QuerySet[Fleet]) -> int:
    """Deletes fleets: their devices stay, in no fleet, and their fleet policies go with them, so each
    organisation concerned is re-evaluated once, after commit."""
    organisation_ids = sorted(set(fleets.values_list("organisation_id", flat=True)))
    deleted, _ = fleets.delete()
    for organisation_id in organisation_ids:
        _recompute_organisation_after_commit(organisation_id, "fleet deleted")
    return deleted
