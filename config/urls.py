from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from fleet.api.errors import api_not_found

# The schema and its documentation are public: they describe the API, they expose no data.
_public = {"authentication_classes": [], "permission_classes": [AllowAny], "throttle_classes": []}

api_v1 = [
    path("", include("fleet.api.urls")),
    path("", include("updates.api.urls")),
    path("", include("devices.api.urls")),
    path("", include("devices.api.ingest_urls")),
    path("schema/", SpectacularAPIView.as_view(**_public), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema", **_public), name="api-docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("alerts/", include("fleet.urls")),
    path("api/v1/", include(api_v1)),
    # Last: anything else under /api/ is a JSON 404, like the API's own 404s.
    re_path(r"^api/(?P<unmatched>.*)$", api_not_found),
]
