"""``manage.py import_battery_replacements FILE --organisation SLUG [--dry-run] [--result OUT.csv]``."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from devices.imports.commands import ImportCommand
from devices.imports.results import ImportResult
from devices.imports.services import battery_replacements_import
from fleet.models import Organisation


class Command(ImportCommand):
    help = _(
        "Record an organisation's battery replacements from a CSV or XLSX file (date, serial number, "
        "part serial number, reason, performed by; see README, 'Importing')."
    )

    def import_file(self, *, organisation: Organisation, data: bytes, dry_run: bool) -> ImportResult:
        return battery_replacements_import(organisation=organisation, data=data, dry_run=dry_run)
