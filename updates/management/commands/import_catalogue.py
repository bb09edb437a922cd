"""``manage.py import_catalogue FILE...``: load models, support dates and builds from CSV or endoflife.date files."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from fleet.models import Organisation
from updates import catalogue
from updates.services import catalogue_import


class Command(BaseCommand):
    help = _(
        "Import device models, support dates and OS builds from CSV files (see README, 'Catalogue') "
        "or endoflife.date product files (*.md with YAML front matter)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", type=Path, help=_("CSV or endoflife.date .md files."))
        parser.add_argument(
            "--organisation",
            help=_("Slug of the organisation whose private (in-house) builds these are; default: public builds."),
        )
        parser.add_argument(
            "--manufacturer", help=_("Manufacturer name for endoflife.date files (default: first word of the title).")
        )
        parser.add_argument(
            "--ignore-unknown-columns",
            action="store_true",
            help=_("Import CSV files that have columns this command does not know, leaving those columns out."),
        )

    def handle(self, *args: object, **options: object) -> None:
        organisation = None
        if options["organisation"]:
            organisation = Organisation.objects.filter(slug=options["organisation"]).first()
            if organisation is None:
                raise CommandError(_("No organisation with slug %(slug)r.") % {"slug": options["organisation"]})
        failed = False
        for path in options["files"]:
            if not path.is_file():
                raise CommandError(_("%(path)s: no such file.") % {"path": path})
            try:
                entries = catalogue.read_file(
                    path,
                    manufacturer=options["manufacturer"],
                    ignore_unknown_columns=options["ignore_unknown_columns"],
                )
            except (catalogue.CatalogueError, UnicodeDecodeError) as error:
                raise CommandError(str(error)) from error
            result = catalogue_import(entries=entries, organisation=organisation)
            self.stdout.write(
                _(
                    "%(path)s: models %(mc)d created, %(mu)d updated, %(mn)d unchanged; "
                    "builds %(bc)d created, %(bu)d updated, %(bn)d unchanged; %(aliases)d aliases added; "
                    "%(errors)d errors."
                )
                % {
                    "path": path.name,
                    "mc": result.models_created,
                    "mu": result.models_updated,
                    "mn": result.models_unchanged,
                    "bc": result.builds_created,
                    "bu": result.builds_updated,
                    "bn": result.builds_unchanged,
                    "aliases": result.aliases_created,
                    "errors": len(result.errors),
                }
            )
            for message in result.skipped:
                self.stdout.write(self.style.WARNING(message))
            for message in result.errors:
                self.stderr.write(self.style.ERROR(message))
            failed = failed or bool(result.errors)
        if failed:
            raise CommandError(_("Some rows could not be imported (listed above); the others were."))
