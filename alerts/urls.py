"""Public pages of the alerts app: what an email recipient reaches without an account."""

from __future__ import annotations

from django.urls import path

from alerts import views

app_name = "alerts"

urlpatterns = [
    path("unsubscribe/preview/", views.unsubscribe_preview, name="unsubscribe_preview"),
    path("unsubscribe/<int:subscription_id>/<str:token>/", views.unsubscribe, name="unsubscribe"),
    # Links of digests sent before per-recipient messages: answered with a page saying how to unsubscribe now.
    path("unsubscribe/<str:token>/", views.legacy_unsubscribe, name="legacy_unsubscribe"),
]
