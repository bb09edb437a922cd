"""Step 3 of the demo seed, one device at a time: the device as rows, with its check-in history (the newest
check-in is its current state) and, for a few, a battery replacement.

Everything but the device's organisation and serial depends on ``(seed, i)``. This runs in a second thread
while the previous batch is written: it reads only the context, never the database.
"""

from __future__ import annotations

import datetime as dt
import random

from demo.base import DAY, between, from_timestamp
from demo.devices import DeviceContext, imei_of, serial_of
from devices.choices import BatteryEventKind, CheckInSource
from updates.choices import Channel

DEVICE_COLUMNS = (
    "organisation_id", "fleet_id", "serial", "imei", "asset_tag", "assignee", "model_id", "channel", "enrolled_at",
    "battery_installed_on", "current_build_id", "reported_build_number", "android_version", "security_patch_level",
    "last_check_in_at", "battery_level_pct", "battery_health_pct", "battery_cycle_count",
)  # fmt: skip
CHECK_IN_COLUMNS = (
    "device_id", "reported_at", "received_at", "source", "build_id", "build_number", "android_version",
    "security_patch_level", "battery_level_pct", "battery_health_pct", "battery_cycle_count",
)  # fmt: skip
EVENT_COLUMNS = (
    "device_id", "kind", "occurred_at", "part_serial", "health_pct", "reason", "performed_by", "created_at",
)  # fmt: skip

_FIRST_NAMES = (
    "Camille Léa Manon Chloé Inès Sarah Jade Louise Emma Julie Pauline Marie Claire Anaïs Nadia Sophie Laura "
    "Lucas Hugo Louis Nathan Thomas Théo Maxime Antoine Nicolas Julien Mehdi Karim Pierre Yann Romain Kevin "
    "Alexandre Mathieu Olivier Sébastien Bruno Éric Franck Laurent"
).split()
_LAST_NAMES = (
    "Martin Bernard Thomas Petit Robert Richard Durand Dubois Moreau Laurent Simon Michel Lefebvre Leroy Roux "
    "David Bertrand Morel Fournier Girard Bonnet Dupont Lambert Fontaine Rousseau Vincent Muller Lefèvre Faure "
    "André Mercier Blanc Guérin Boyer Garnier Chevalier François Legrand Gauthier Garcia Perrin Robin Clément "
    "Morin Nicolas Henry Roussel Mathieu Gautier Masson Le Gall Kerjean Benali Haddad Nguyen"
).split()


def generate_batch(context: DeviceContext, indexes: list[int]) -> list[tuple[tuple, list[tuple], tuple | None]]:
    return [generate_device(context, index) for index in indexes]


def generate_device(context: DeviceContext, index: int) -> tuple[tuple, list[tuple], tuple | None]:
    """One device as rows: the device, its check-ins (newest first) and maybe a battery replacement.

    Rows follow ``DEVICE_COLUMNS``, ``CHECK_IN_COLUMNS`` and ``EVENT_COLUMNS`` without the device id, which
    the caller adds once the device is written. Times are POSIX seconds until the rows are built.
    """
    rng = random.Random(context.seed * 10_000_019 + index)
    now = context.now
    org = context.organisation_of(index)
    mc = rng.choices(org.models, cum_weights=org.model_weights)[0]
    fleet = None if rng.random() < 0.03 else rng.choices(org.fleets, cum_weights=org.fleet_weights)[0]
    # Devices were bought while the model was on sale, within the last four years.
    earliest = max(mc.launched + 20 * DAY, now - 4 * 365 * DAY)
    latest = max(earliest + DAY, min(now - 10 * DAY, mc.supported_until - 30 * DAY))
    enrolled = rng.uniform(earliest, latest)
    # Battery: health lost per year and cycles per day; one device in twenty wears its battery fast.
    wear = rng.uniform(14, 24) if rng.random() < 0.05 else rng.uniform(2.5, 7)
    cycles_per_day = rng.uniform(0.35, 1.05)
    replaced: float | None = None
    channel = Channel.STABLE

    # 1. When it last reported: most within hours, some within days, a few silent for weeks, a few never.
    kind = rng.random()
    if kind < 0.02:
        last = None
    elif kind < 0.92:
        last = now - min(rng.expovariate(1 / 14), 72) * 3600
    elif kind < 0.96:
        last = now - rng.uniform(3, 20) * DAY
    else:
        last = now - rng.uniform(30, 120) * DAY
    if last is not None:
        last = float(int(max(last, enrolled + 3600)))

    # 2. Which build it runs: its organisation's line if it has one, else the manufacturer's.
    line = mc.private if mc.spec.slug in org.spec.private_models else mc.stable
    if last is not None and not line.released_by(last):
        line = mc.stable
    if last is not None and not line.released_by(last):
        last = None  # nothing it could have run existed yet: it has not reported
    check_ins: list[tuple] = []
    if last is not None:
        newest = line.released_by(last) - 1
        while newest > 0 and line.revoked[newest]:
            newest -= 1
        r = rng.random()
        behind = (
            0
            if r < 0.6
            else 1
            if r < 0.85
            else 2
            if r < 0.92
            else between(rng, 3, 6)
            if r < 0.97
            else between(rng, 7, 20)
        )
        position = max(0, newest - behind)
        if line.revoked[position] and rng.random() < 0.7:
            position = max(0, position - 1)  # most devices never installed the pulled build
        if now - enrolled > 400 * DAY and last - enrolled > 366 * DAY and rng.random() < 0.08:
            replaced = float(int(rng.uniform(enrolled + 365 * DAY, last - DAY)))

        # 3. History, newest first: reports days to weeks apart, now and then on an older build. Whole seconds,
        # strictly decreasing, so (device, reported_at, source) never collides.
        at, pos = last, position
        for step in range(between(rng, 3, 5)):
            if step:
                at -= between(rng, 2 * DAY, 25 * DAY)
                if rng.random() < 0.35:
                    pos -= between(rng, 1, 2)
                while pos >= 0 and line.released[pos] > at:
                    pos -= 1
                if at < enrolled or pos < 0:
                    break
            build = (line.ids[pos], line.numbers[pos], line.versions[pos], line.patches[pos])
            if not step:
                if line is mc.stable and mc.beta.released_by(last) and rng.random() < 0.02:
                    channel, beta = Channel.BETA, mc.beta.released_by(last) - 1
                    build = (mc.beta.ids[beta], mc.beta.numbers[beta], mc.beta.versions[beta], mc.beta.patches[beta])
                elif rng.random() < 0.015:
                    # A build the catalogue has never heard of: an engineering image, an unpublished hotfix.
                    suffix = rng.choice(["-eng", "-userdebug", "-hotfix1", "-rc2"])
                    build = (None, build[1] + suffix, build[2], build[3])
            since = replaced if replaced is not None and at >= replaced else enrolled
            age = (at - since) / DAY
            health = max(35, round(100 - (wear / 2 if since == replaced else wear) * age / 365))
            moment = from_timestamp(at)
            check_ins.append(
                (
                    moment,
                    moment + dt.timedelta(seconds=between(rng, 1, 90)),
                    CheckInSource.DEMO.value,
                    *build,
                    between(rng, 8, 100),
                    health,
                    int(cycles_per_day * age),
                )
            )
    # The device's state is its newest report: build, versions, last check-in and battery.
    state: tuple = (None, "", "", None, None, None, None, None)
    if check_ins:
        reported_at, _, _, build_id, number, version, patch, level, health, cycles = check_ins[0]
        state = (build_id, number, version, patch, reported_at, level, health, cycles)
    device = (
        org.org.pk,
        fleet.pk if fleet else None,
        serial_of(index),
        imei_of(index, mc.spec.tac) if rng.random() < 0.94 else None,
        "" if rng.random() < 0.05 else f"{org.spec.tag}-{from_timestamp(enrolled):%Y}-{index:06d}",
        "" if rng.random() < 0.1 else f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
        mc.model.pk,
        channel.value,
        from_timestamp(enrolled),
        from_timestamp(replaced if replaced is not None else enrolled).date(),
        *state,
    )
    event = None
    if replaced is not None:
        old_health = max(35, round(100 - wear * (replaced - enrolled) / DAY / 365))
        if old_health < 80:
            reason = context.worn_battery % {"health": old_health}
        else:
            reason = rng.choice(context.other_battery_reasons)
        event = (
            BatteryEventKind.REPLACEMENT.value,
            from_timestamp(replaced),
            f"BAT-{mc.spec.code}-{between(rng, 100000, 999999)}",
            old_health,
            reason,
            rng.choice([org.spec.name, mc.service]),
            from_timestamp(replaced + 3600),
        )
    return device, check_ins, event
