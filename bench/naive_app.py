"""The naive baseline of bench/ingest.py: a plain DRF ModelViewSet PATCH per device, as a team would build it
without thinking about volume. Never part of production URLs: only ``gunicorn bench.naive_app:application``
(started by bench/ingest.py) serves it, next to the real API, so both run in the same server.
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db.models import QuerySet  # noqa: E402
from django.urls import include, path  # noqa: E402
from rest_framework import routers, serializers, viewsets  # noqa: E402

from config.urls import urlpatterns as production_urlpatterns  # noqa: E402
from devices.models import Device  # noqa: E402


class NaiveDeviceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = [
            "id",
            "serial",
            "reported_build_number",
            "android_version",
            "security_patch_level",
            "last_check_in_at",
            "battery_level_pct",
            "battery_health_pct",
            "battery_cycle_count",
        ]
        read_only_fields = ["id", "serial"]


class NaiveDeviceViewSet(viewsets.ModelViewSet):
    serializer_class = NaiveDeviceSerializer
    required_scopes = {"PATCH": "report", "PUT": "report", "POST": "report", "DELETE": "report"}

    def get_queryset(self) -> QuerySet[Device]:
        return Device.objects.filter(organisation_id=self.request.auth.organisation_id)


router = routers.SimpleRouter()
router.register("bench/naive/devices", NaiveDeviceViewSet, basename="bench-naive-device")
urlpatterns = [path("", include(router.urls)), *production_urlpatterns]

# This module is the URLconf of the benchmark server only (set before the first request is resolved).
settings.ROOT_URLCONF = __name__
application = get_wsgi_application()
