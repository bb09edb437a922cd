"""Check-in ingestion URLs, included under ``/api/v1/``."""

from __future__ import annotations

from django.urls import path

from devices.api.ingest import AmapiIngestView, AmapiPushView, CheckInsView, HeadwindIngestView

urlpatterns = [
    path("checkins/", CheckInsView.as_view(), name="api-checkins"),
    path("ingest/amapi/", AmapiIngestView.as_view(), name="api-ingest-amapi"),
    # A client's own Pub/Sub push endpoint: push_id is ApiClient.push_id (secrets.token_urlsafe).
    path("ingest/amapi/push/<slug:push_id>/", AmapiPushView.as_view(), name="api-ingest-amapi-push"),
    path("ingest/headwind/", HeadwindIngestView.as_view(), name="api-ingest-headwind"),
]
