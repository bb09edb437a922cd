"""``manage.py seed_demo``: create (or complete) the demo fleet; see ``demo.services`` for what it contains."""

from __future__ import annotations

import sys
from argparse import ArgumentParser, ArgumentTypeError
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from tqdm import tqdm

from common import bulk
from demo.base import DEFAULT_DEVICES, DEFAULT_ORGANISATIONS, DEFAULT_SEED, SEEDED_MODELS
from demo.services import seed_demo
from devices.compliance import engine as compliance
from devices.compliance import tallies
from devices.compliance.rollouts import rollouts_refresh
from devices.models import CheckIn, Device
from fleet.models import Fleet, Organisation


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than ``minimum``."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ArgumentTypeError(gettext("%(value)r is not a whole number.") % {"value": value}) from None
        if number < minimum:
            raise ArgumentTypeError(gettext("must be at least %(minimum)d.") % {"minimum": minimum})
        return number

    return parse


class Command(BaseCommand):
    help = gettext(
        "Creates a believable demo fleet (catalogue, organisations, devices and their history). "
        "Idempotent: running it again creates nothing; a larger --devices adds only the missing devices."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--devices",
            type=_at_least(0),
            default=DEFAULT_DEVICES,
            help=_("Number of devices in the demo fleet (default %(default)s)."),
        )
        parser.add_argument(
            "--organisations",
            type=_at_least(1),
            default=DEFAULT_ORGANISATIONS,
            help=_("Number of organisations, the ministry first (default %(default)s)."),
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=DEFAULT_SEED,
            help=_("Seed of the random generator: the same seed gives the same devices (default %(default)s)."),
        )

    def handle(self, *args: Any, devices: int, organisations: int, seed: int, **options: Any) -> None:
        # call_command(..., stderr=...) hands over the raw stream; tqdm needs one, not Django's line wrapper.
        stream = options.get("stderr") or sys.stderr
        bars: list[tqdm] = []

        def on_batch(done: int, total: int) -> None:
            if not bars:  # the total is known once the generator knows which devices are missing
                bars.append(
                    tqdm(
                        total=total,
                        unit=" devices",
                        desc=gettext("Devices"),
                        file=stream,
                        disable=options["verbosity"] < 1,
                    )
                )
            bars[0].update(done)

        try:
            result = seed_demo(devices=devices, organisations=organisations, seed=seed, progress=on_batch)
        finally:
            for bar in bars:
                bar.close()
        # Fresh statistics for the rows just copied in, before anything plans a query on them: the planner
        # otherwise plans the first sweep for empty tables (autovacuum's analyse comes later, if it is on).
        bulk.analyze([Device, CheckIn, Organisation, Fleet])
        # The demo should open on real statuses, not "unknown": one sweep, as the scheduler would run.
        evaluation = compliance.recompute(reason="demo seed")
        tallies.snapshot_statuses()
        tallies.tally_devices()
        rollouts_refresh()

        if options["verbosity"] < 1:
            return
        self.stdout.write(
            gettext("Demo fleet: %(devices)d devices over %(organisations)d organisations (seed %(seed)d).")
            % {"devices": devices, "organisations": organisations, "seed": seed}
        )
        for model in SEEDED_MODELS:
            self.stdout.write(
                gettext("  %(table)s: %(created)d created, %(total)d in all")
                % {
                    "table": model._meta.verbose_name_plural,
                    "created": result.created.get(model, 0),
                    "total": model._default_manager.count(),
                }
            )
        self.stdout.write(
            gettext("Compliance evaluated: %(updated)d devices updated, %(transitions)d changed status.")
            % {"updated": evaluation.updated, "transitions": evaluation.transitions_total}
        )
        self.stdout.write(self.style.SUCCESS(gettext("Demo fleet ready.")))
