"""What an import did (or would do) with each row, and the same as a CSV people can download."""

from __future__ import annotations

import csv
import dataclasses
import io
import time
from collections import Counter

from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from common.text import inert_cell


class Outcome(models.TextChoices):
    CREATED = "created", _("created")
    UPDATED = "updated", _("updated")
    UNCHANGED = "unchanged", _("unchanged")
    FAILED = "failed", _("failed")


@dataclasses.dataclass
class RowResult:
    line: int
    serial: str
    outcome: str
    message: str = ""


@dataclasses.dataclass
class ImportResult:
    """Per-row outcomes, in file order, plus what the file as a whole said."""

    rows: list[RowResult] = dataclasses.field(default_factory=list)
    skipped_lines: int = 0  # empty lines
    ignored_columns: list[str] = dataclasses.field(default_factory=list)
    fleets_created: list[str] = dataclasses.field(default_factory=list)
    dry_run: bool = True
    # Seconds spent per step (read, plan, write, recompute), for the benchmark and the logs.
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    def timed(self, step: str, started: float) -> float:
        """Adds the time since ``started`` to ``step``; returns now, to start the next step."""
        now = time.perf_counter()
        self.timings[step] = self.timings.get(step, 0.0) + now - started
        return now

    def counts(self) -> dict[str, int]:
        tally = Counter(row.outcome for row in self.rows)
        return {outcome: tally.get(outcome, 0) for outcome in Outcome.values} | {"skipped": self.skipped_lines}

    @property
    def failures(self) -> list[RowResult]:
        return [row for row in self.rows if row.outcome == Outcome.FAILED]

    def summary(self) -> dict:
        """JSON-serialisable digest kept on an import job: counts, the first failures, the file's notes."""
        return {
            "counts": self.counts(),
            "failures": [dataclasses.asdict(row) for row in self.failures[:200]],
            "failures_total": len(self.failures),
            "ignored_columns": self.ignored_columns,
            "fleets_created": self.fleets_created,
            "dry_run": self.dry_run,
        }

    def to_csv(self) -> str:
        """One line per row of the file: line number, serial number, outcome, reason (UTF-8 with BOM)."""
        buffer = io.StringIO()
        buffer.write("\ufeff")
        writer = csv.writer(buffer)
        writer.writerow([gettext("line"), gettext("serial number"), gettext("result"), gettext("reason")])
        labels = dict(Outcome.choices)
        for row in sorted(self.rows, key=lambda row: row.line):
            writer.writerow([row.line, inert_cell(row.serial), str(labels[row.outcome]), inert_cell(row.message)])
        return buffer.getvalue()
