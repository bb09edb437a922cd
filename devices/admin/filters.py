"""The device list's own filters: patch age, last seen, end of support, build."""

from __future__ import annotations

import datetime as dt

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from devices.dashboard import PATCH_AGE_BUCKETS


class PatchAgeFilter(admin.SimpleListFilter):
    """Security patch age buckets, as the dashboard shows them (days since the reported patch level)."""

    title = _("patch age")
    parameter_name = "patch_age"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        buckets = [(label, gettext("%(days)s days") % {"days": label}) for label, _lower, _upper in PATCH_AGE_BUCKETS]
        return [*buckets, ("unknown", gettext("unknown"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "unknown":
            return queryset.filter(security_patch_level__isnull=True)
        for label, lower, upper in PATCH_AGE_BUCKETS:
            if value == label:
                today = timezone.now().date()
                if upper is not None:
                    queryset = queryset.filter(security_patch_level__gte=today - dt.timedelta(days=upper))
                if lower is not None:
                    queryset = queryset.filter(security_patch_level__lt=today - dt.timedelta(days=lower))
                return queryset
        return queryset


class LastSeenFilter(admin.SimpleListFilter):
    """Time since the last check-in, in the buckets a manager asks about."""

    title = _("last seen")
    parameter_name = "last_seen"
    BUCKETS = (("1d", 0, 1), ("7d", 1, 7), ("30d", 7, 30), ("older", 30, None))

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [
            ("1d", gettext("in the last 24 hours")),
            ("7d", gettext("1 to 7 days ago")),
            ("30d", gettext("7 to 30 days ago")),
            ("older", gettext("more than 30 days ago")),
            ("never", gettext("never")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "never":
            return queryset.filter(last_check_in_at__isnull=True)
        now = timezone.now()
        for value, newer, older in self.BUCKETS:
            if self.value() == value:
                queryset = queryset.filter(last_check_in_at__lte=now - dt.timedelta(days=newer))
                if older is not None:
                    queryset = queryset.filter(last_check_in_at__gt=now - dt.timedelta(days=older))
                return queryset
        return queryset


class EndOfSupportFilter(admin.SimpleListFilter):
    """Whether the device's model still gets security updates, and for how long."""

    title = _("model end of support")
    parameter_name = "end_of_support"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [
            ("ended", gettext("ended")),
            ("6m", gettext("within 6 months")),
            ("12m", gettext("within 12 months")),
            ("later", gettext("later or not announced")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        today = timezone.now().date()
        value = self.value()
        if value == "ended":
            return queryset.filter(model__security_support_until__lt=today)
        if value in {"6m", "12m"}:
            horizon = today + dt.timedelta(days=183 if value == "6m" else 365)
            return queryset.filter(model__security_support_until__gte=today, model__security_support_until__lte=horizon)
        if value == "later":
            horizon = today + dt.timedelta(days=365)
            return queryset.filter(
                Q(model__security_support_until__gt=horizon) | Q(model__security_support_until__isnull=True)
            )
        return queryset


class BuildFilter(admin.SimpleListFilter):
    """Devices running one build number (``?build=<number>``; linked from the catalogue, no sidebar list:
    a catalogue has thousands of builds)."""

    title = _("build")
    parameter_name = "build"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, value)] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(reported_build_number=self.value()) if self.value() else queryset
