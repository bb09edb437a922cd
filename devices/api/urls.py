from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from devices.api.observed import ObservedBuildViewSet
from devices.api.rejections import RejectedMessageViewSet
from devices.api.views import BatteryEventViewSet, ComplianceSummaryView, DeviceViewSet, TimeToPatchView

router = SimpleRouter()
router.register("devices", DeviceViewSet, basename="device")
router.register("battery-events", BatteryEventViewSet, basename="batteryevent")
router.register("observed-builds", ObservedBuildViewSet, basename="observedbuild")
router.register("rejected-messages", RejectedMessageViewSet, basename="rejectedmessage")

urlpatterns = [
    path("compliance/summary/", ComplianceSummaryView.as_view(), name="compliance-summary"),
    path("compliance/time-to-patch/", TimeToPatchView.as_view(), name="compliance-time-to-patch"),
    *router.urls,
]
