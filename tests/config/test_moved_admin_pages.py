"""Admin pages of models that moved app (issue #13) answer a permanent redirect to their new address."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from config.urls import MOVED_ADMIN_PAGES
from tests.factories import AlertSubscriptionFactory


@pytest.mark.parametrize(("old", "new"), sorted(MOVED_ADMIN_PAGES.items()))
def test_every_moved_page_points_at_a_registered_admin(old, new):
    registered = {f"{model._meta.app_label}/{model._meta.model_name}" for model in admin.site._registry}
    assert new in registered
    assert old not in registered


@pytest.mark.django_db
def test_an_old_bookmark_lands_on_the_new_page_with_its_query(client):
    response = client.get("/admin/fleet/alertsubscription/?frequency__exact=daily")
    assert response.status_code == 301
    assert response["Location"] == "/admin/alerts/alertsubscription/?frequency__exact=daily"


@pytest.mark.django_db
def test_the_new_page_still_decides_who_may_see_it(client, django_user_model):
    subscription = AlertSubscriptionFactory()
    response = client.get(f"/admin/fleet/alertsubscription/{subscription.pk}/change/", follow=True)
    # Anonymous: the redirect is followed to the new page, which sends to the login.
    assert response.redirect_chain[0] == (f"/admin/alerts/alertsubscription/{subscription.pk}/change/", 301)
    assert response.redirect_chain[-1][0].startswith(reverse("admin:login"))
