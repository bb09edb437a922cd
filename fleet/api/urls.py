from __future__ import annotations

from rest_framework.routers import SimpleRouter

from fleet.api.views import FleetViewSet

router = SimpleRouter()
router.register("fleets", FleetViewSet, basename="fleet")

urlpatterns = router.urls
