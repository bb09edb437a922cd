"""Creates an MDM's API client and prints its token, the only time it is ever shown."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from fleet.choices import Scope
from fleet.models import Organisation
from fleet.services import api_client_create, api_client_push_enable


class Command(BaseCommand):
    help = gettext("Create an API client (an MDM's credentials) for an organisation and print its token once.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--organisation", required=True, help=_("Organisation slug."))
        parser.add_argument("--name", required=True, help=_("A name for the client, unique in the organisation."))
        parser.add_argument(
            "--scopes",
            default=Scope.READ,
            help=_("Comma-separated scopes among read, report, enrol, catalogue (default: read)."),
        )
        parser.add_argument(
            "--expires-in-days", type=int, default=None, help=_("Expire after N days (default: never).")
        )
        parser.add_argument(
            "--pubsub-push",
            action="store_true",
            help=_("Also give it a Google Pub/Sub push endpoint and print its URL, secret included, once."),
        )
        parser.add_argument(
            "--push-service-account",
            default="",
            help=_("Accept Google's OIDC tokens for this service account on the push endpoint."),
        )
        parser.add_argument(
            "--push-audience",
            default="",
            help=_("The OIDC tokens' audience (default: the push endpoint's URL)."),
        )

    def handle(
        self,
        *args: Any,
        organisation: str,
        name: str,
        scopes: str,
        expires_in_days: int | None,
        pubsub_push: bool = False,
        push_service_account: str = "",
        push_audience: str = "",
        **options: Any,
    ) -> None:
        org = Organisation.objects.filter(slug=organisation).first()
        if org is None:
            raise CommandError(gettext("No organisation has the slug %(slug)r.") % {"slug": organisation})
        scope_list = [scope.strip() for scope in scopes.split(",") if scope.strip()]
        if not scope_list:
            valid = ", ".join(Scope.values)
            raise CommandError(gettext("Give at least one scope among: %(valid)s.") % {"valid": valid})
        if expires_in_days is not None and expires_in_days < 1:
            raise CommandError(gettext("--expires-in-days must be 1 or more."))
        expires_at = timezone.now() + dt.timedelta(days=expires_in_days) if expires_in_days else None
        secret = None
        try:
            with transaction.atomic():
                client, token = api_client_create(organisation=org, name=name, scopes=scope_list, expires_at=expires_at)
                if pubsub_push or push_service_account:
                    client, secret = api_client_push_enable(
                        api_client=client,
                        service_account=push_service_account,
                        audience=push_audience,
                        with_secret=pubsub_push,
                    )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        self.stdout.write(
            gettext("Created API client %(name)s (id %(id)d) for %(organisation)s with scopes %(scopes)s.")
            % {"name": client.name, "id": client.pk, "organisation": org.slug, "scopes": ", ".join(client.scopes)}
        )
        if expires_at:
            self.stdout.write(gettext("It expires at %(when)s.") % {"when": expires_at.isoformat(timespec="seconds")})
        self.stdout.write(gettext("Token (shown only now, store it safely):"))
        self.stdout.write(token)
        if secret:
            self.stdout.write(gettext("Pub/Sub push endpoint, secret included (shown only now, store it safely):"))
            self.stdout.write(client.push_url(secret))
        if client.push_service_account:
            self.stdout.write(
                gettext("Pub/Sub push endpoint for OIDC tokens of %(account)s (audience %(audience)s):")
                % {"account": client.push_service_account, "audience": client.push_token_audience}
            )
            self.stdout.write(client.push_url())
