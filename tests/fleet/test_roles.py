"""The two roles as groups: created by a migration, kept in line with memberships."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from fleet.choices import Role
from fleet.models import Membership
from fleet.services import membership_sync_groups
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_the_migration_creates_the_manager_and_viewer_groups_with_their_permissions():
    manager, viewer = Group.objects.get(name="Fleet manager"), Group.objects.get(name="Fleet viewer")
    manager_perms = set(manager.permissions.values_list("codename", flat=True))
    viewer_perms = set(viewer.permissions.values_list("codename", flat=True))
    assert {"view_device", "change_device", "add_batteryevent", "delete_waiver"} <= manager_perms
    assert {"view_device", "view_checkin", "view_osbuild"} <= viewer_perms
    assert not {p for p in viewer_perms if not p.startswith("view_")}


def test_a_users_group_follows_their_highest_role(org_a, org_b):
    user = UserFactory(username="claire", is_staff=False)
    MembershipFactory(user=user, organisation=org_a, role=Role.VIEWER)
    membership_sync_groups(user=user)
    user.refresh_from_db()
    assert list(user.groups.values_list("name", flat=True)) == ["Fleet viewer"] and user.is_staff
    MembershipFactory(user=user, organisation=org_b, role=Role.MANAGER)
    membership_sync_groups(user=user)
    assert list(user.groups.values_list("name", flat=True)) == ["Fleet manager"]
    Membership.objects.filter(user=user).delete()
    membership_sync_groups(user=user)
    assert not user.groups.exists()


def test_adding_a_member_in_the_admin_puts_them_in_the_group(client, manager_a, org_a):
    newcomer = UserFactory(username="newcomer", is_staff=False)
    MembershipFactory(user=newcomer, organisation=org_a, role=Role.VIEWER)  # visible to the manager
    Membership.objects.filter(user=newcomer).delete()
    client.force_login(UserFactory(username="root-roles", is_superuser=True))
    response = client.post(
        reverse("admin:fleet_membership_add"), {"user": newcomer.pk, "organisation": org_a.pk, "role": "manager"}
    )
    assert response.status_code == 302
    assert list(newcomer.groups.values_list("name", flat=True)) == ["Fleet manager"]
