"""Work the product does on its own: imports, and the sweeps (SweepRun and SweepRange moved here from
updates and keep their tables)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from devices.choices import (
    ImportKind,
    ImportStatus,
    SweepRangeStatus,
    SweepStatus,
)

_PERCENT = [MinValueValidator(0), MaxValueValidator(100)]


class ImportJob(models.Model):
    """An uploaded spreadsheet between its preview and its confirmation, then what importing it did."""

    organisation = models.ForeignKey(
        "fleet.Organisation", on_delete=models.CASCADE, related_name="+", verbose_name=_("organisation")
    )
    kind = models.CharField(_("kind"), max_length=30, choices=ImportKind.choices)
    status = models.CharField(_("status"), max_length=20, choices=ImportStatus.choices, default=ImportStatus.PENDING)
    filename = models.CharField(_("file name"), max_length=255)
    # The file itself until it is imported (bounded by IMPORT_MAX_UPLOAD_BYTES), emptied afterwards: in
    # the database, not on a disk, so the worker that imports it needs no storage shared with the web.
    content = models.BinaryField(_("content"), editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("uploaded by"),
    )
    created_at = models.DateTimeField(_("uploaded at"), default=timezone.now)
    finished_at = models.DateTimeField(_("imported at"), null=True, blank=True)
    summary = models.JSONField(_("summary"), default=dict, blank=True)
    result_csv = models.TextField(_("result per row (CSV)"), blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("import")
        verbose_name_plural = _("imports")
        indexes = [models.Index(fields=["organisation", "created_at"], name="importjob_org_time_idx")]

    def __str__(self) -> str:
        return f"{self.filename} ({self.get_kind_display()})"


# --- What the compliance engine writes (devices/compliance/): rollout curves and sweep bookkeeping ----------


class SweepRun(models.Model):
    """One periodic compliance sweep: its id ranges, their progress, and what it changed in the fleet.

    Global, not an organisation's: one sweep covers every tenant, so only superusers see it in the admin.
    """

    task_id = models.CharField(
        _("task id"),
        max_length=255,
        unique=True,
        null=True,
        blank=True,
        help_text=_("The Celery task that started the sweep: a redelivered task resumes its run."),
    )
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=SweepStatus.choices, default=SweepStatus.RUNNING)
    range_size = models.PositiveIntegerField(_("devices per range"))
    ranges_planned = models.PositiveIntegerField(_("ranges planned"), default=0)
    ranges_done = models.PositiveIntegerField(_("ranges done"), default=0)
    ranges_failed = models.PositiveIntegerField(
        _("ranges failed"), default=0, help_text=_("Ranges given up after their last retry.")
    )
    range_retries = models.PositiveIntegerField(
        _("range retries"), default=0, help_text=_("Failed attempts of a range, each retried alone.")
    )
    devices_updated = models.PositiveBigIntegerField(_("devices updated"), default=0)
    transitions = models.JSONField(_("transitions"), default=dict, blank=True, help_text=_("By the status entered."))

    class Meta:
        db_table = "updates_sweeprun"
        ordering = ["-started_at"]
        verbose_name = _("sweep run")
        verbose_name_plural = _("sweep runs")
        indexes = [
            # /metrics reads the last finished run at every scrape; retention deletes by start.
            models.Index(fields=["finished_at"], name="sweeprun_finished_idx"),
            models.Index(fields=["started_at"], name="sweeprun_started_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M:%S} ({self.get_status_display()})"

    @property
    def duration(self) -> dt.timedelta | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    def summary(self) -> dict:
        """What the sweep task returns and logs."""
        return {
            "run": self.pk,
            "status": self.status,
            "ranges": self.ranges_planned,
            "updated": self.devices_updated,
            "transitions": dict(self.transitions),
        }


class SweepRange(models.Model):
    """One id range of a sweep, recomputed in one transaction; its row makes a redelivered task a no-op."""

    run = models.ForeignKey(SweepRun, on_delete=models.CASCADE, related_name="ranges", verbose_name=_("sweep run"))
    lo = models.BigIntegerField(_("first device id"))
    hi = models.BigIntegerField(_("last device id"))
    status = models.CharField(
        _("status"), max_length=10, choices=SweepRangeStatus.choices, default=SweepRangeStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("failed attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    devices_updated = models.PositiveIntegerField(_("devices updated"), default=0)
    transitions = models.JSONField(_("transitions"), default=dict, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        db_table = "updates_sweeprange"
        ordering = ["run", "lo"]
        verbose_name = _("sweep range")
        verbose_name_plural = _("sweep ranges")
        constraints = [models.UniqueConstraint(fields=["run", "lo"], name="sweeprange_unique_start")]

    def __str__(self) -> str:
        return f"{self.lo}-{self.hi}"


class TaskDelivery(models.Model):
    """A Celery task that started and has not finished yet, and how many times it started.

    The row is written when a task starts and deleted when it returns or raises. A row still there when the
    same task id starts again means the previous run never ended: its worker was killed (out of memory, a hard
    time limit) and the broker redelivered it. After ``CELERY_TASK_MAX_STARTS`` such starts the task is
    *poisoned*: it is not run again, the row keeps its name, arguments and reason, and the queue moves on
    (``devices.task_guard``).
    """

    task_id = models.CharField(_("task id"), max_length=255, unique=True)
    name = models.CharField(_("task"), max_length=200)
    # A bounded copy (devices.task_guard.ARGUMENTS_MAX_CHARS): what to re-run by hand once the cause is fixed.
    arguments = models.TextField(_("arguments"), blank=True)
    starts = models.PositiveIntegerField(_("starts"), default=1)
    first_started_at = models.DateTimeField(_("first started at"), default=timezone.now)
    last_started_at = models.DateTimeField(_("last started at"), default=timezone.now)
    poisoned_at = models.DateTimeField(_("given up at"), null=True, blank=True)
    reason = models.TextField(_("reason"), blank=True)

    class Meta:
        ordering = ["-last_started_at"]
        verbose_name = _("unfinished task")
        verbose_name_plural = _("unfinished tasks")
        indexes = [
            models.Index(
                fields=["poisoned_at"], name="taskdelivery_poisoned_idx", condition=Q(poisoned_at__isnull=False)
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} [{self.task_id}]"
