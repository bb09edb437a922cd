"""Write operations on tenants and their credentials."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from fleet.choices import Role
from fleet.models import ApiClient, Membership, Organisation


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
