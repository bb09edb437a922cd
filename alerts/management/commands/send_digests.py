"""``manage.py send_digests``: the digest dispatcher for cron users, and a way to see what it would send."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from alerts import digests, services
from alerts.models import AlertSubscription


class Command(BaseCommand):
    help = gettext(
        "Sends the email digests that are due, each period at most once, in this process (no Celery worker "
        "needed). --dry-run shows what would be sent without sending or recording anything."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help=_("Show subjects and recipients, send nothing."))
        parser.add_argument(
            "--subscription",
            type=int,
            action="append",
            dest="subscriptions",
            metavar="ID",
            help=_("Only this subscription (repeat for several)."),
        )
        parser.add_argument(
            "--due-now",
            action="store_true",
            help=_("Treat every subscription as due now: sends its current period ahead of time, still only once."),
        )

    def handle(self, *args: Any, dry_run: bool, subscriptions: list[int] | None, due_now: bool, **options: Any) -> None:
        if subscriptions:
            missing = set(subscriptions) - set(
                AlertSubscription.objects.filter(pk__in=subscriptions).values_list("pk", flat=True)
            )
            if missing:
                raise CommandError(
                    gettext("No alert subscription with id %(ids)s.") % {"ids": ", ".join(map(str, sorted(missing)))}
                )
        if dry_run:
            self._dry_run(subscriptions, due_now=due_now)
            return
        result = services.digests_dispatch(subscription_ids=subscriptions, due_now=due_now, enqueue=False)
        failures = 0
        for delivery_id in result.created + result.requeued:
            try:
                outcome = services.digest_delivery_send(delivery_id=delivery_id)
            except services.DigestSendError as exc:
                failures += 1
                self.stderr.write(
                    gettext("Delivery %(id)d not sent, will be retried by the next run: %(error)s")
                    % {"id": delivery_id, "error": exc}
                )
                continue
            self.stdout.write(gettext("Delivery %(id)d: %(outcome)s") % {"id": delivery_id, "outcome": outcome})
        self.stdout.write(
            gettext("%(count)d digest period(s) claimed, %(lost)d lost claim(s) settled.")
            % {"count": len(result.created), "lost": result.lost}
        )
        if failures:
            raise CommandError(gettext("%(count)d digest(s) could not be sent.") % {"count": failures})

    def _dry_run(self, subscription_ids: list[int] | None, *, due_now: bool) -> None:
        now = timezone.now()
        queryset = AlertSubscription.objects.filter(is_active=True).select_related("organisation").order_by("pk")
        if subscription_ids:
            queryset = queryset.filter(pk__in=subscription_ids)
        for subscription in queryset:
            period = services.digest_period(subscription, now=now, due_now=due_now)
            if period is None:
                self.stdout.write(gettext("%(name)s: not due") % {"name": subscription})
                continue
            if subscription.deliveries.filter(period=period).exists():
                self.stdout.write(
                    gettext("%(name)s: period %(period)s already claimed") % {"name": subscription, "period": period}
                )
                continue
            window_start, previous_counts = services.digest_window_start(subscription, period)
            recipients = digests.digest_recipients(subscription)
            digest, rendered = services.digest_render(
                subscription, window_start=window_start, window_end=now, previous_counts=previous_counts
            )
            verdict = (
                gettext("would skip (nothing new)")
                if digest.is_empty and not subscription.send_when_empty
                else gettext("would send")
            )
            self.stdout.write(
                f"{subscription}: {verdict} · {period:%Y-%m-%d %H:%M} UTC · {rendered.subject} · "
                f"{', '.join(recipients) or gettext('no recipients')}"
            )
