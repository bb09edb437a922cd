"""``manage.py flag_devices``: run the compliance sweep once, for those who prefer cron to Celery beat."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone
from django.utils.translation import gettext as _

from devices.choices import ComplianceStatus
from devices.compliance import engine as compliance
from devices.compliance import tallies
from devices.selectors import models_reaching_end_of_support_by_organisation
from fleet.models import Organisation


class Command(BaseCommand):
    help = _("Recompute the compliance of every device (the periodic sweep) and print what changed.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--organisation", help=_("Only this organisation's devices (slug)."))

    def handle(self, *args: object, **options: object) -> None:
        organisation_id = None
        if options["organisation"]:
            organisation_id = Organisation.objects.values_list("pk", flat=True).get(slug=options["organisation"])
        started = time.monotonic()
        result = compliance.recompute(organisation_id=organisation_id, reason="sweep (flag_devices)")
        tallies.snapshot_statuses()
        tallies.tally_devices()
        self.stdout.write(
            _("%(updated)d devices updated, %(transitions)d changed status, in %(seconds).1f s.")
            % {
                "updated": result.updated,
                "transitions": result.transitions_total,
                "seconds": time.monotonic() - started,
            }
        )
        labels = dict(ComplianceStatus.choices)
        for status, count in sorted(result.transitions.items()):
            self.stdout.write(_("  now %(status)s: %(count)d") % {"status": labels.get(status, status), "count": count})
        today = timezone.now().date()
        names = dict(Organisation.objects.values_list("pk", "name"))
        for org_id, models in models_reaching_end_of_support_by_organisation(today=today).items():
            if organisation_id is not None and org_id != organisation_id:
                continue
            self.stdout.write(_("%(organisation)s: models reaching end of support:") % {"organisation": names[org_id]})
            for row in models:
                ended = row["model__security_support_until"] < today
                self.stdout.write(
                    (
                        _("  %(model)s: ended %(date)s, %(count)d devices")
                        if ended
                        else _("  %(model)s: ends %(date)s, %(count)d devices")
                    )
                    % {
                        "model": f"{row['model__manufacturer__name']} {row['model__name']}",
                        "date": row["model__security_support_until"].isoformat(),
                        "count": row["device_count"],
                    }
                )
