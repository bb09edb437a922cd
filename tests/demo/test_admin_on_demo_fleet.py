"""Every admin page renders for a superuser on the real demo fleet (not only on hand-made factories)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import reverse

from tests.factories import UserFactory


@pytest.mark.django_db
def test_every_changelist_and_change_page_renders_for_a_superuser_on_the_demo_fleet(client):
    call_command("seed_demo", "--devices", "150", "--verbosity", "0")
    client.force_login(UserFactory(username="demo-root", is_superuser=True))
    failures, change_pages = [], 0
    for model in sorted(admin.site._registry, key=lambda m: m._meta.label):
        opts = model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        if (status := client.get(url).status_code) != 200:
            failures.append((url, status))
        obj = model._default_manager.order_by("pk").first()
        if obj is not None:
            change_pages += 1
            url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
            if (status := client.get(url).status_code) != 200:
                failures.append((url, status))
    assert not failures
    assert change_pages >= 10  # the demo fleet fills every domain table but pins, waivers and API clients
