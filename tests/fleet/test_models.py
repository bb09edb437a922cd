"""Tenant invariants: names unique where users expect them, one default policy, scopes validated."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from fleet.models import ApiClient, CompliancePolicy, hash_token
from tests.factories import (
    ApiClientFactory,
    CompliancePolicyFactory,
    FleetFactory,
    MembershipFactory,
    OrganisationFactory,
)

pytestmark = pytest.mark.django_db


def test_fleet_slug_is_unique_within_an_organisation():
    fleet = FleetFactory(slug="bretagne")
    FleetFactory(slug="bretagne")  # another organisation
    with pytest.raises(IntegrityError), transaction.atomic():
        FleetFactory(slug="bretagne", organisation=fleet.organisation)


def test_a_user_is_a_member_of_an_organisation_once():
    membership = MembershipFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        MembershipFactory(user=membership.user, organisation=membership.organisation, role="viewer")


def test_an_organisation_has_one_default_policy_and_one_per_fleet():
    organisation = OrganisationFactory()
    CompliancePolicyFactory(organisation=organisation)
    fleet = FleetFactory(organisation=organisation)
    CompliancePolicyFactory(organisation=organisation, fleet=fleet)
    with pytest.raises(IntegrityError), transaction.atomic():
        CompliancePolicyFactory(organisation=organisation)
    with pytest.raises(IntegrityError), transaction.atomic():
        CompliancePolicyFactory(organisation=organisation, fleet=fleet)


def test_policy_defaults_are_the_documented_thresholds():
    policy = CompliancePolicyFactory()
    assert (policy.grace_days, policy.max_patch_age_days, policy.max_silence_days) == (14, 90, 30)
    assert (policy.battery_max_age_days, policy.battery_min_health_pct, policy.eos_warning_days) == (730, 80, 180)


def test_a_policy_cannot_name_another_organisations_fleet():
    policy = CompliancePolicy(organisation=OrganisationFactory(), fleet=FleetFactory())
    with pytest.raises(ValidationError) as excinfo:
        policy.full_clean()
    assert "another organisation" in str(excinfo.value.message_dict["fleet"])


def test_battery_minimum_health_must_be_a_percentage():
    with pytest.raises(IntegrityError), transaction.atomic():
        CompliancePolicyFactory(battery_min_health_pct=120)


def test_api_client_stores_only_the_hash_of_its_token():
    client = ApiClientFactory.build(organisation=OrganisationFactory())
    token = ApiClient.generate_token()
    client.set_token(token)
    client.save()
    client.refresh_from_db()
    assert client.token_hash == hash_token(token)
    assert token not in (client.token_hash, client.token_prefix)
    assert client.token_prefix == token[:8]


def test_api_client_rejects_unknown_scopes_naming_them():
    client = ApiClientFactory.build(organisation=OrganisationFactory(), scopes=["read", "admin"])
    with pytest.raises(ValidationError) as excinfo:
        client.full_clean()
    assert "admin" in str(excinfo.value.message_dict["scopes"])
