from __future__ import annotations

from rest_framework import serializers

from fleet.models import Fleet


class FleetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Fleet
        fields = ["id", "slug", "name"]


class FleetSummarySerializer(serializers.ModelSerializer):
    """A fleet as a link inside another resource."""

    class Meta:
        model = Fleet
        fields = ["id", "slug", "name"]
