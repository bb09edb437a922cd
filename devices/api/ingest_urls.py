"""Check-in ingestion URLs, included under ``/api/v1/``."""

from __future__ import annotations

from django.urls import path

from devices.api.ingest import AmapiIngestView, CheckInsView, HeadwindIngestView

urlpatterns = [
    path("checkins/", CheckInsView.as_view(), name="api-checkins"),
    path("ingest/amapi/", AmapiIngestView.as_view(), name="api-ingest-amapi"),
    path("ingest/headwind/", HeadwindIngestView.as_view(), name="api-ingest-headwind"),
]
