from __future__ import annotations

from rest_framework.routers import SimpleRouter

from updates.api.views import BuildViewSet, DeviceModelViewSet

router = SimpleRouter()
router.register("models", DeviceModelViewSet, basename="devicemodel")
router.register("builds", BuildViewSet, basename="osbuild")

urlpatterns = router.urls
