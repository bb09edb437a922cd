"""Benchmark of the admin pages at scale, next to the same pages with Django admin defaults, in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fleetpatch_bench_admin python bench/admin_pages.py \
        [--devices 1000000] [--check-ins-per-device 10] [--repeat 7]

1. Generate N devices (bench/fleet_data.py) and N x 10 check-ins, evaluate compliance, snapshot.
2. As a fleet manager of the largest organisation (a member, so every page is scoped) and in-process
   through Django's test client (server time, no network), time the median of ``--repeat`` loads of:
   the device list (default, filtered by status, searched by serial), a device page, its timeline,
   and the dashboard; and count their queries.
3. The baseline: the same device list and device page served by a plain ``admin.ModelAdmin`` with
   Django's defaults (full result count, no list_select_related, ``icontains`` search), mounted on a
   second admin site in this process only.
4. Print the table and write bench/results/admin_pages.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")

BENCH_URLCONF = "bench.admin_pages"


def _naive_site():
    from django.contrib import admin

    from devices.models import Device

    site = admin.AdminSite(name="naive")

    class NaiveDeviceAdmin(admin.ModelAdmin):
        list_display = (
            "serial",
            "organisation",
            "fleet",
            "model",
            "compliance_status",
            "battery_status",
            "current_build",
            "last_check_in_at",
        )
        list_filter = ("compliance_status", "battery_status", "fleet", "model")
        search_fields = ("serial", "imei", "asset_tag", "assignee")
        # Django's own templates: FleetPatch's add links to views this bare admin does not have.
        change_list_template = "admin/change_list.html"
        change_form_template = "admin/change_form.html"

    site.register(Device, NaiveDeviceAdmin)
    return site


def _urlpatterns():
    from django.urls import include, path

    from config.urls import urlpatterns as real

    return [path("naive-admin/", _naive_site().urls), path("", include(real))]


def __getattr__(name: str):  # the URLconf this module serves when ROOT_URLCONF points at it
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--check-ins-per-device", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="keep the data of a previous run")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    from bench.fleet_data import generate, generate_check_ins
    from devices.compliance.engine import recompute
    from devices.compliance.tallies import snapshot_statuses, tally_devices
    from devices.models import Device
    from fleet.choices import Role
    from fleet.models import Membership, Organisation

    if connection.vendor != "postgresql":
        sys.exit("bench/admin_pages.py needs DATABASE_URL=postgres://... (a database it may fill)")
    settings.ROOT_URLCONF = BENCH_URLCONF
    settings.STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    setup_test_environment()
    call_command("migrate", verbosity=0)
    figures: dict = {"devices": args.devices, "database": "postgresql"}
    if not args.reuse or not Device.objects.exists():
        figures.update(generate(devices=args.devices))
        figures.update(generate_check_ins(per_device=args.check_ins_per_device))
        started = time.monotonic()
        recompute(reason="bench")
        snapshot_statuses()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        figures["evaluate_seconds"] = round(time.monotonic() - started, 1)
    started = time.monotonic()
    tally_devices()  # what every sweep does after recomputing: the dashboard reads these rows
    figures["tally_seconds"] = round(time.monotonic() - started, 2)
    print(f"data ready: {Device.objects.count():,} devices; tallies in {figures['tally_seconds']} s", flush=True)

    organisation = Organisation.objects.get(slug="bench-1")
    User = get_user_model()
    manager, _ = User.objects.get_or_create(username="bench-manager", defaults={"is_staff": True})
    Membership.objects.get_or_create(user=manager, organisation=organisation, defaults={"role": Role.MANAGER})
    superuser, _ = User.objects.get_or_create(username="bench-root", defaults={"is_staff": True, "is_superuser": True})
    in_organisation = Device.objects.filter(organisation=organisation).order_by("pk")
    device = in_organisation[in_organisation.count() // 2]

    pages = {
        "device list": ("/admin/devices/device/", "/naive-admin/devices/device/"),
        "device list, behind": (
            "/admin/devices/device/?compliance_status__exact=behind",
            "/naive-admin/devices/device/?compliance_status__exact=behind",
        ),
        "device list, search serial": (
            f"/admin/devices/device/?q={device.serial}",
            f"/naive-admin/devices/device/?q={device.serial}",
        ),
        "device page": (
            f"/admin/devices/device/{device.pk}/change/",
            f"/naive-admin/devices/device/{device.pk}/change/",
        ),
        "device timeline": (f"/admin/devices/device/{device.pk}/timeline/", None),
        "dashboard": (f"/admin/?organisation={organisation.pk}", None),
    }

    def measure(client: Client, url: str) -> tuple[float, int]:
        times, queries = [], 0
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - started)
            assert response.status_code == 200, (url, response.status_code)
            queries = len(captured.captured_queries)
        return statistics.median(times) * 1000, queries

    ours, naive = Client(), Client()
    ours.force_login(manager)
    naive.force_login(superuser)  # the naive admin knows nothing of organisations
    results = []
    for name, (url, baseline_url) in pages.items():
        ms, queries = measure(ours, url)
        row = {"page": name, "ms": round(ms, 1), "queries": queries}
        if baseline_url:
            base_ms, base_queries = measure(naive, baseline_url)
            row |= {
                "django_defaults_ms": round(base_ms, 1),
                "django_defaults_queries": base_queries,
                "speedup": round(base_ms / ms, 1),
            }
        results.append(row)
        print(json.dumps(row), flush=True)
    figures["pages"] = results
    figures["target"] = "every page under 500 ms server time"
    out = ROOT / "bench" / "results" / "admin_pages.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
