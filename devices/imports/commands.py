"""What ``import_devices`` and ``import_battery_replacements`` share: arguments, output, exit status."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from devices.imports.reading import ImportFileError
from devices.imports.results import ImportResult, Outcome
from fleet.models import Organisation

# Failures printed on the terminal; all of them go to --result.
SHOWN_FAILURES = 50


class ImportCommand(BaseCommand):
    """Reads FILE into --organisation, prints the counts and the failed rows; exits non-zero when the file
    cannot be read or no row of it could be imported."""

    def import_file(self, *, organisation: Organisation, data: bytes, dry_run: bool) -> ImportResult:
        raise NotImplementedError

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help=_("CSV (comma or semicolon separated) or XLSX file."))
        parser.add_argument("--organisation", required=True, help=_("Slug of the organisation to import into."))
        parser.add_argument("--dry-run", action="store_true", help=_("Show what would change; write nothing."))
        parser.add_argument("--result", type=Path, help=_("Write the outcome of every row to this CSV file."))

    def handle(self, *args: object, **options: object) -> None:
        path: Path = options["file"]  # type: ignore[assignment]
        organisation = Organisation.objects.filter(slug=options["organisation"]).first()
        if organisation is None:
            raise CommandError(_("No organisation with slug %(slug)r.") % {"slug": options["organisation"]})
        if not path.is_file():
            raise CommandError(_("%(path)s: no such file.") % {"path": path})
        try:
            result = self.import_file(organisation=organisation, data=path.read_bytes(), dry_run=options["dry_run"])
        except ImportFileError as error:
            raise CommandError(f"{path.name}: {error}") from error
        self._report(path, result, options["result"])  # type: ignore[arg-type]
        if not any(row.outcome != Outcome.FAILED for row in result.rows):
            raise CommandError(_("%(path)s: no row could be imported.") % {"path": path.name})

    def _report(self, path: Path, result: ImportResult, result_path: Path | None) -> None:
        counts = result.counts()
        template = (
            _(
                "%(path)s (dry run, nothing written): %(created)d to create, %(updated)d to update, "
                "%(unchanged)d unchanged, %(failed)d failed, %(skipped)d empty lines skipped."
            )
            if result.dry_run
            else _(
                "%(path)s: %(created)d created, %(updated)d updated, %(unchanged)d unchanged, "
                "%(failed)d failed, %(skipped)d empty lines skipped."
            )
        )
        self.stdout.write(template % {"path": path.name, **counts})
        if result.fleets_created:
            message = _("Fleets to create: %(names)s") if result.dry_run else _("Fleets created: %(names)s")
            self.stdout.write(message % {"names": ", ".join(result.fleets_created)})
        if result.ignored_columns:
            self.stdout.write(
                self.style.WARNING(_("Columns ignored: %(names)s") % {"names": ", ".join(result.ignored_columns)})
            )
        failures = result.failures
        for row in failures[:SHOWN_FAILURES]:
            self.stderr.write(
                self.style.ERROR(
                    _("line %(line)d (%(serial)s): %(reason)s")
                    % {"line": row.line, "serial": row.serial or "-", "reason": row.message}
                )
            )
        if len(failures) > SHOWN_FAILURES:
            self.stderr.write(_("… and %(count)d more failed rows.") % {"count": len(failures) - SHOWN_FAILURES})
        if result_path is not None:
            result_path.write_text(result.to_csv(), encoding="utf-8")
            self.stdout.write(_("Result of every row written to %(path)s.") % {"path": result_path})
