"""The tenant admin: organisations, fleets, memberships, policies, and API clients whose token is shown once."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from fleet.choices import Role
from fleet.models import ApiClient, CompliancePolicy, Membership, Organisation
from fleet.services import api_client_create, api_client_revoke
from tests.factories import (
    ApiClientFactory,
    FleetFactory,
    MembershipFactory,
    OrganisationFactory,
    UserFactory,
)

API_CLIENT_ADD = reverse("admin:fleet_apiclient_add")
API_CLIENT_CHANGELIST = reverse("admin:fleet_apiclient_changelist")


# --- API clients: the service ----------------------------------------------------------------------


def test_creating_an_api_client_returns_a_token_whose_hash_only_is_stored(org_a):
    client, token = api_client_create(organisation=org_a, name="Intune", scopes=["read", "report"])
    client.refresh_from_db()
    assert client.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert client.token_prefix == token[:8]
    assert len(token) >= 40
    stored = {str(value) for value in ApiClient.objects.filter(pk=client.pk).values().get().values()}
    assert token not in stored


def test_two_api_clients_never_share_a_token(org_a):
    _, first = api_client_create(organisation=org_a, name="One", scopes=["read"])
    _, second = api_client_create(organisation=org_a, name="Two", scopes=["read"])
    assert first != second


@pytest.mark.parametrize(
    ("scopes", "field"),
    [(["read", "admin"], "scopes"), ([], "scopes"), ("read", "scopes")],
)
def test_an_api_client_needs_known_scopes(org_a, scopes, field):
    with pytest.raises(ValidationError) as error:
        api_client_create(organisation=org_a, name="Bad", scopes=scopes)
    assert field in error.value.message_dict
    assert not ApiClient.objects.exists()


def test_an_api_client_cannot_be_created_already_expired(org_a):
    with pytest.raises(ValidationError) as error:
        api_client_create(
            organisation=org_a, name="Late", scopes=["read"], expires_at=timezone.now() - dt.timedelta(minutes=1)
        )
    assert "expires_at" in error.value.message_dict


def test_revoking_keeps_the_first_revocation_time(org_a):
    earlier = timezone.now() - dt.timedelta(days=3)
    already = ApiClientFactory(organisation=org_a, revoked_at=earlier)
    active = ApiClientFactory(organisation=org_a)
    now = timezone.now()
    assert api_client_revoke(api_clients=ApiClient.objects.all(), now=now) == 1
    already.refresh_from_db()
    active.refresh_from_db()
    assert already.revoked_at == earlier
    assert active.revoked_at == now


# --- API clients: the admin ------------------------------------------------------------------------


def test_creating_an_api_client_in_the_admin_shows_its_token_once(client, manager_a, org_a):
    client.force_login(manager_a)
    response = client.post(
        API_CLIENT_ADD, {"organisation": org_a.pk, "name": "Intune", "scopes": ["read", "report"]}, follow=True
    )
    assert response.status_code == 200
    body = response.content.decode()
    token = re.search(r"<code>([A-Za-z0-9_\-]{40,})</code>", body).group(1)

    api_client = ApiClient.objects.get(name="Intune")
    assert api_client.organisation == org_a
    assert api_client.scopes == ["read", "report"]
    assert api_client.token_hash == hashlib.sha256(token.encode()).hexdigest()

    # Shown once: neither the next page nor the client's own page shows it again.
    assert token not in client.get(API_CLIENT_CHANGELIST).content.decode()
    change_page = client.get(reverse("admin:fleet_apiclient_change", args=[api_client.pk])).content.decode()
    assert token not in change_page
    assert api_client.token_prefix in change_page
    assert api_client.token_hash not in change_page


def test_the_api_client_form_refuses_unknown_duplicate_or_missing_scopes(client, manager_a, org_a):
    ApiClientFactory(organisation=org_a, name="Intune")
    client.force_login(manager_a)
    response = client.post(API_CLIENT_ADD, {"organisation": org_a.pk, "name": "Intune", "scopes": ["admin"]})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "scopes" in errors
    assert ApiClient.objects.count() == 1
    response = client.post(API_CLIENT_ADD, {"organisation": org_a.pk, "name": "Other"})
    assert "scopes" in response.context["adminform"].form.errors


def test_a_manager_of_b_cannot_create_an_api_client_for_a(client, manager_b, org_a):
    client.force_login(manager_b)
    response = client.post(API_CLIENT_ADD, {"organisation": org_a.pk, "name": "Rogue", "scopes": ["enrol"]})
    assert response.status_code == 200
    assert "organisation" in response.context["adminform"].form.errors
    assert not ApiClient.objects.exists()


def test_a_viewer_cannot_create_an_api_client(client, viewer_a, org_a):
    client.force_login(viewer_a)
    response = client.post(API_CLIENT_ADD, {"organisation": org_a.pk, "name": "Rogue", "scopes": ["read"]})
    assert response.status_code == 403
    assert not ApiClient.objects.exists()


def _revoke(client, *api_clients: ApiClient):
    return client.post(
        API_CLIENT_CHANGELIST,
        {"action": "revoke_selected", "_selected_action": [c.pk for c in api_clients], "index": 0},
        follow=True,
    )


def test_the_revoke_action_revokes_the_selected_clients(client, manager_a, org_a):
    chosen, other = ApiClientFactory(organisation=org_a), ApiClientFactory(organisation=org_a)
    client.force_login(manager_a)
    response = _revoke(client, chosen)
    assert "1 API client revoked." in response.content.decode()
    chosen.refresh_from_db()
    other.refresh_from_db()
    assert chosen.revoked_at is not None
    assert other.revoked_at is None


def test_the_revoke_action_cannot_reach_another_organisations_clients(client, manager_b, org_a):
    client_of_a = ApiClientFactory(organisation=org_a)
    client.force_login(manager_b)
    _revoke(client, client_of_a)
    client_of_a.refresh_from_db()
    assert client_of_a.revoked_at is None


def test_a_manager_who_only_views_an_organisation_cannot_revoke_its_clients(client, manager_a, org_b):
    MembershipFactory(user=manager_a, organisation=org_b, role=Role.VIEWER)
    client_of_b = ApiClientFactory(organisation=org_b)
    client.force_login(manager_a)
    _revoke(client, client_of_b)
    client_of_b.refresh_from_db()
    assert client_of_b.revoked_at is None


def test_a_viewer_is_not_offered_the_revoke_action(client, viewer_a, org_a):
    ApiClientFactory(organisation=org_a)
    client.force_login(viewer_a)
    response = client.get(API_CLIENT_CHANGELIST)
    assert "revoke_selected" not in response.content.decode()


# --- Organisations, fleets, members, policies ------------------------------------------------------


def test_a_member_sees_only_their_organisations(client, manager_a, org_a, org_b):
    client.force_login(manager_a)
    response = client.get(reverse("admin:fleet_organisation_changelist"))
    assert list(response.context["cl"].result_list) == [org_a]


def test_only_superusers_add_or_delete_organisations(client, manager_a, superuser, org_a):
    client.force_login(manager_a)
    assert client.get(reverse("admin:fleet_organisation_add")).status_code == 403
    assert client.post(reverse("admin:fleet_organisation_delete", args=[org_a.pk]), {"post": "yes"}).status_code == 403
    assert Organisation.objects.filter(pk=org_a.pk).exists()
    response = client.post(
        reverse("admin:fleet_organisation_change", args=[org_a.pk]), {"name": "Ministère A (renamed)", "slug": "org-a"}
    )
    assert response.status_code == 302
    client.force_login(superuser)
    assert client.get(reverse("admin:fleet_organisation_add")).status_code == 200


def test_a_manager_gives_roles_only_to_people_of_their_organisations(client, manager_a, viewer_a, manager_b, org_a):
    stranger = UserFactory(username="stranger")
    client.force_login(manager_a)
    form = client.get(reverse("admin:fleet_membership_add")).context["adminform"].form
    assert set(form.fields["user"].queryset) == {manager_a, viewer_a}
    assert stranger not in form.fields["user"].queryset and manager_b not in form.fields["user"].queryset


def test_a_manager_can_promote_a_viewer_of_their_organisation(client, manager_a, viewer_a, org_a):
    membership = Membership.objects.get(user=viewer_a)
    client.force_login(manager_a)
    response = client.post(
        reverse("admin:fleet_membership_change", args=[membership.pk]),
        {"user": viewer_a.pk, "organisation": org_a.pk, "role": Role.MANAGER},
    )
    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.MANAGER


def test_a_viewer_cannot_promote_themselves(client, viewer_a, org_a):
    membership = Membership.objects.get(user=viewer_a)
    client.force_login(viewer_a)
    response = client.post(
        reverse("admin:fleet_membership_change", args=[membership.pk]),
        {"user": viewer_a.pk, "organisation": org_a.pk, "role": Role.MANAGER},
    )
    assert response.status_code == 403
    membership.refresh_from_db()
    assert membership.role == Role.VIEWER


def test_a_policy_cannot_name_another_organisations_fleet(client, superuser, org_a, org_b):
    fleet_b = FleetFactory(organisation=org_b)
    client.force_login(superuser)
    response = client.post(
        reverse("admin:fleet_compliancepolicy_add"),
        {
            "organisation": org_a.pk,
            "fleet": fleet_b.pk,
            "grace_days": 14,
            "max_patch_age_days": 90,
            "max_silence_days": 30,
            "battery_max_age_days": 730,
            "battery_min_health_pct": 80,
            "eos_warning_days": 180,
        },
    )
    assert response.status_code == 200
    assert "fleet" in response.context["adminform"].form.errors
    assert not CompliancePolicy.objects.exists()


def test_the_fleet_list_of_a_manager_holds_only_their_fleets(client, manager_b, org_a, org_b):
    FleetFactory(organisation=org_a, name="Secret fleet of A")
    mine = FleetFactory(organisation=org_b, name="Fleet of B")
    client.force_login(manager_b)
    response = client.get(reverse("admin:fleet_fleet_changelist"))
    assert list(response.context["cl"].result_list) == [mine]
    assert "Secret fleet of A" not in response.content.decode()


def test_an_organisation_created_by_a_superuser_needs_no_membership_to_be_seen_by_them(client, superuser):
    OrganisationFactory(name="Fresh tenant", slug="fresh")
    client.force_login(superuser)
    assert "Fresh tenant" in client.get(reverse("admin:fleet_organisation_changelist")).content.decode()


def test_an_api_client_made_with_pubsub_push_shows_its_push_url_with_the_secret_once(client, manager_a, org_a):
    client.force_login(manager_a)
    response = client.post(
        API_CLIENT_ADD,
        {
            "organisation": org_a.pk,
            "name": "AMAPI",
            "scopes": ["report", "enrol"],
            "pubsub_push": "on",
            "push_service_account": "amapi-push@project.iam.gserviceaccount.com",
        },
        follow=True,
    )
    body = response.content.decode()
    api_client = ApiClient.objects.get(name="AMAPI")
    match = re.search(rf"{re.escape(api_client.push_url())}\?token=([A-Za-z0-9_\-]{{40,}})", body)
    assert match, body
    assert api_client.push_secret_hash == hashlib.sha256(match.group(1).encode()).hexdigest()
    assert api_client.push_service_account == "amapi-push@project.iam.gserviceaccount.com"
    change_page = client.get(reverse("admin:fleet_apiclient_change", args=[api_client.pk])).content.decode()
    assert match.group(1) not in change_page
    assert api_client.push_url() in change_page


def test_the_push_secret_actions_rotate_and_revoke_it(client, manager_a, org_a):
    api_client = ApiClientFactory(organisation=org_a)
    client.force_login(manager_a)
    data = {"action": "rotate_push_secret", "_selected_action": [api_client.pk]}
    body = client.post(API_CLIENT_CHANGELIST, data, follow=True).content.decode()
    api_client.refresh_from_db()
    secret = re.search(r"\?token=([A-Za-z0-9_\-]{40,})", body).group(1)
    assert api_client.push_secret_hash == hashlib.sha256(secret.encode()).hexdigest()

    data = {"action": "revoke_push_secret", "_selected_action": [api_client.pk]}
    assert "1 push secret revoked." in client.post(API_CLIENT_CHANGELIST, data, follow=True).content.decode()
    api_client.refresh_from_db()
    assert api_client.push_secret_hash == ""
    assert api_client.push_id  # the endpoint stays; only its secret went
