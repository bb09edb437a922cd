from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny

from common.api.exceptions import api_not_found
from config import health
from fleet.login_throttle import ThrottledAdminLoginForm

# The schema and its documentation are public: they describe the API, they expose no data.
_public = {"authentication_classes": [], "permission_classes": [AllowAny], "throttle_classes": []}

api_v1 = [
    path("", include("fleet.api.urls")),
    path("", include("updates.api.urls")),
    path("", include("devices.api.urls")),
    path("", include("devices.api.ingest_urls")),
    path("schema/", SpectacularAPIView.as_view(**_public), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file of its own (docs/?script), and our template its
    # page style: the Content-Security-Policy allows no inline script or style element.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api_docs/swagger_ui.html", **_public),
        name="api-docs",
    ),
]

# Admin pages of models that moved app in issue "One house" (#13): old bookmarks and links in mail already sent
# are sent on, path and query string kept. The target page checks who may see it, as it always does.
MOVED_ADMIN_PAGES = {
    "fleet/alertsubscription": "alerts/alertsubscription",
    "fleet/digestdelivery": "alerts/digestdelivery",
    "updates/sweeprun": "devices/sweeprun",
    "updates/sweeprange": "devices/sweeprange",
    "updates/buildrollout": "devices/buildrollout",
}
moved_admin_pages = [
    re_path(
        rf"^admin/{old}/(?P<rest>.*)$",
        RedirectView.as_view(url=f"/admin/{new}/%(rest)s", permanent=True, query_string=True),
    )
    for old, new in MOVED_ADMIN_PAGES.items()
]

# Failed admin logins are counted per username, per address, per pair and in total (fleet.login_throttle).
admin.site.login_form = ThrottledAdminLoginForm

urlpatterns = [
    # Answered earlier by config.health.ProbeMiddleware; routed here too so reverse() and the test client agree.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    *moved_admin_pages,
    path("admin/", admin.site.urls),
    path("alerts/", include("alerts.urls")),
    path("api/v1/", include(api_v1)),
    # Last: anything else under /api/ is a JSON 404, like the API's own 404s. [\s\S], not ".": a path may
    # hold an encoded newline (%0A), which "." does not match, and Django's HTML 404 would answer.
    re_path(r"^api/(?P<unmatched>[\s\S]*)$", api_not_found),
]
