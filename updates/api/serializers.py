from __future__ import annotations

import datetime as dt

from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from common.api.fields import BoundedDateField, BoundedDateTimeField, StrictCharField, TextField
from updates.choices import Channel
from updates.models import DeviceModel, Manufacturer, OSBuild
from updates.validators import validate_patch_level_not_in_future


class ManufacturerSerializer(serializers.ModelSerializer):
    aliases = serializers.SlugRelatedField(
        slug_field="name",
        many=True,
        read_only=True,
        help_text=_('Other spellings of the manufacturer that reports are understood by ("Zebra").'),
    )

    class Meta:
        model = Manufacturer
        fields = ["id", "slug", "name", "aliases"]


class DeviceModelSummarySerializer(serializers.ModelSerializer):
    """A model as a link inside another resource (needs ``select_related("...manufacturer")``)."""

    manufacturer = serializers.CharField(source="manufacturer.name", read_only=True)

    class Meta:
        model = DeviceModel
        fields = ["id", "slug", "name", "manufacturer"]


class DeviceModelSerializer(serializers.ModelSerializer):
    manufacturer = ManufacturerSerializer(read_only=True)
    aliases = serializers.SlugRelatedField(
        slug_field="name",
        many=True,
        read_only=True,
        help_text=_("Other names reports are understood by: model codes, codenames, marketing names."),
    )

    class Meta:
        model = DeviceModel
        fields = [
            "id",
            "slug",
            "name",
            "manufacturer",
            "aliases",
            "launched_on",
            "security_support_until",
            "os_support_until",
        ]


class AliasSerializer(serializers.Serializer):
    """Input of ``POST /models/<id>/aliases/`` and ``/manufacturer-aliases/``: one more name."""

    name = StrictCharField(max_length=100, help_text=_('The name as MDMs report it ("SM-G556B", "Zebra").'))


class BuildSummarySerializer(serializers.ModelSerializer):
    """A build as a link inside another resource."""

    class Meta:
        model = OSBuild
        fields = ["id", "build_number", "android_version", "security_patch_level", "released_at"]


class BuildSerializer(serializers.ModelSerializer):
    model = DeviceModelSummarySerializer(read_only=True)
    private = serializers.SerializerMethodField(help_text=_("True for a private build of your organisation."))

    class Meta:
        model = OSBuild
        fields = [
            "id",
            "model",
            "build_number",
            "android_version",
            "security_patch_level",
            "released_at",
            "channel",
            "private",
            "is_revoked",
            "revoked_at",
        ]

    def get_private(self, build: OSBuild) -> bool:
        return build.organisation_id is not None


class BuildPublishSerializer(serializers.Serializer):
    """Input of ``POST /builds/``: a private build of the client's organisation."""

    model = serializers.PrimaryKeyRelatedField(
        queryset=DeviceModel.objects.all(), help_text=_("Id of the device model (see /models/).")
    )
    build_number = StrictCharField(max_length=100)
    android_version = StrictCharField(max_length=20, required=False, allow_blank=True, default="")
    security_patch_level = BoundedDateField(validators=[validate_patch_level_not_in_future])
    released_at = BoundedDateTimeField(required=False, help_text=_("Default: now."))
    channel = serializers.ChoiceField(choices=Channel.choices, default=Channel.STABLE)

    def validate_released_at(self, value: dt.datetime) -> dt.datetime:
        if value > timezone.now() + dt.timedelta(days=1):
            raise serializers.ValidationError(gettext("A build cannot be released in the future."))
        return value


class TimeToPatchQuerySerializer(serializers.Serializer):
    model = TextField(max_length=150, help_text=_('Device model: id, slug or name ("Manufacturer Model").'))


class TimeToPatchSerializer(serializers.Serializer):
    build = BuildSummarySerializer()
    channel = serializers.CharField()
    private = serializers.BooleanField()
    installed_devices = serializers.IntegerField()
    median_days = serializers.FloatField(allow_null=True)
    p90_days = serializers.FloatField(allow_null=True)
