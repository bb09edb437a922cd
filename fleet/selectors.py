"""Read queries about organisations: which ones a user belongs to, and in which role."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleet.choices import Role
from fleet.models import Membership

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
    from django.http import HttpRequest

# Attribute under which a request keeps its user's memberships, so one page load asks once.
_REQUEST_CACHE_ATTRIBUTE = "_fleetpatch_organisation_roles"


def organisation_roles_for_user(user: AbstractBaseUser | AnonymousUser) -> dict[int, str]:
    """Organisation id → role for every membership of ``user``, in one query.

    Memberships only: a superuser sees every organisation without being a member of any, and the
    callers that scope data check ``is_superuser`` themselves instead of filtering on every id.
    An inactive user has no organisations.
    """
    if not user.is_authenticated or not user.is_active:
        return {}
    # No ordering: the model's default (organisation name, username) would join two tables for nothing.
    return dict(Membership.objects.filter(user=user).order_by().values_list("organisation_id", "role"))


def _ids(roles: dict[int, str], *, manage: bool) -> list[int]:
    return sorted(org_id for org_id, role in roles.items() if not manage or role == Role.MANAGER)


def organisation_ids_for_user(user: AbstractBaseUser | AnonymousUser, *, manage: bool = False) -> list[int]:
    """Ids of the organisations ``user`` may see (any role), or may manage (``manage=True``)."""
    return _ids(organisation_roles_for_user(user), manage=manage)


def organisation_ids_for_request(request: HttpRequest, *, manage: bool = False) -> list[int]:
    """:func:`organisation_ids_for_user` for ``request.user``, asked once per request.

    The admin asks the same question many times per page (permissions of every model on the index,
    foreign-key choices, filters); the memberships are read once and kept on the request.
    """
    roles = getattr(request, _REQUEST_CACHE_ATTRIBUTE, None)
    if roles is None:
        roles = organisation_roles_for_user(request.user)
        setattr(request, _REQUEST_CACHE_ATTRIBUTE, roles)
    return _ids(roles, manage=manage)
