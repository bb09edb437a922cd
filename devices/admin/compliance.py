"""What the compliance engine records of its own work, read-only: the rollout curves behind the dashboard
(an organisation's rows, scoped like every history record) and the sweeps with their id ranges (global rows:
a sweep covers every organisation, so only superusers see them)."""

from __future__ import annotations

from django.contrib import admin
from django.db import models
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from devices.models import BuildRollout, SweepRange, SweepRun, TaskDelivery
from fleet.scoping import RecordsAdmin, ScopedRelatedFieldListFilter, is_superuser


@admin.register(BuildRollout)
class BuildRolloutAdmin(RecordsAdmin):
    """The nightly rollout curves behind the dashboard: read-only."""

    list_display = ("build", "organisation", "days_since_release", "installed", "eligible", "computed_at")
    list_select_related = ("build__model__manufacturer", "organisation")
    list_filter = (("organisation", ScopedRelatedFieldListFilter),)
    ordering = ("organisation_id", "build_id", "days_since_release")


class SuperuserRecordsAdmin(admin.ModelAdmin):
    """Global rows FleetPatch writes itself (the sweeps cover every organisation): superusers only, read-only."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_superuser(request)

    def has_view_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return is_superuser(request)

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return is_superuser(request)


class SweepRangeInline(admin.TabularInline):
    model = SweepRange
    fields = ("lo", "hi", "status", "attempts", "devices_updated", "transitions", "finished_at", "last_error")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


@admin.register(SweepRun)
class SweepRunAdmin(SuperuserRecordsAdmin):
    """The compliance sweeps: when, how long, how many ranges, what they changed."""

    list_display = (
        "started_at",
        "status",
        "duration",
        "ranges_planned",
        "ranges_done",
        "ranges_failed",
        "range_retries",
        "devices_updated",
    )
    list_filter = ("status",)
    date_hierarchy = "started_at"
    ordering = ("-started_at",)
    inlines = [SweepRangeInline]

    @admin.display(description=_("duration"))
    def duration(self, obj: SweepRun) -> str:
        return "" if obj.duration is None else f"{obj.duration.total_seconds():.1f} s"


@admin.register(SweepRange)
class SweepRangeAdmin(SuperuserRecordsAdmin):
    """The id ranges of the sweeps, to find the one that failed."""

    list_display = ("run", "lo", "hi", "status", "attempts", "devices_updated", "finished_at")
    list_filter = ("status",)
    list_select_related = ("run",)
    ordering = ("-run__started_at", "lo")
    show_full_result_count = False


@admin.register(TaskDelivery)
class TaskDeliveryAdmin(SuperuserRecordsAdmin):
    """Tasks started and not finished: those given up (their worker killed each time) stay here with their
    arguments and reason, to be run again by hand once the cause is fixed; deleting a row forgets it."""

    list_display = ("name", "task_id", "starts", "first_started_at", "last_started_at", "poisoned_at")
    list_filter = (("poisoned_at", admin.EmptyFieldListFilter), "name")
    search_fields = ("task_id", "name", "arguments")
    readonly_fields = (
        "task_id",
        "name",
        "arguments",
        "starts",
        "first_started_at",
        "last_started_at",
        "poisoned_at",
        "reason",
    )
    ordering = ("-last_started_at",)
