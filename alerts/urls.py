"""Public pages of the alerts app: what an email recipient reaches without an account."""

from __future__ import annotations

from django.urls import path

from alerts import views

app_name = "alerts"

urlpatterns = [
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
