"""``manage.py import_devices FILE --organisation SLUG [--dry-run] [--result OUT.csv]``."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from devices.imports.commands import ImportCommand
from devices.imports.results import ImportResult
from devices.imports.services import devices_import
from fleet.models import Organisation


class Command(ImportCommand):
    help = _(
        "Create or update an organisation's devices from a CSV or XLSX file (serial number, IMEI, model, "
        "asset tag, fleet, assignee, OS build, patch level, battery installed on; see README, 'Importing')."
    )

    def import_file(self, *, organisation: Organisation, data: bytes, dry_run: bool) -> ImportResult:
        return devices_import(organisation=organisation, data=data, dry_run=dry_run)
