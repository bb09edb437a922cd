"""Public pages of the fleet app: what an email recipient reaches without an account."""

from __future__ import annotations

from django.urls import path

from fleet import views

app_name = "fleet"

urlpatterns = [
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
