"""What orchestrators and monitoring ask of FleetPatch: liveness, readiness and Prometheus metrics.

- ``/healthz``: the process answers. Touches nothing else, so a database outage never gets web processes killed.
- ``/readyz``: the database answers, every migration is applied, the Celery broker is reachable, the static files
  are collected. 503 otherwise, naming the failing part, so a load balancer stops sending traffic to a process
  that cannot serve it; within ``READYZ_TIMEOUT`` seconds, even when a dependency is frozen (``common.deadline``).
- ``/metrics``: Prometheus text format, behind a bearer token (``METRICS_TOKEN``).

Probes are answered by ``ProbeMiddleware`` before the HTTPS redirect and the ALLOWED_HOSTS check: Kubernetes
and docker health checks call a pod's IP or a service name over plain HTTP, which neither would accept.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, Max, Sum
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from common.db import close_interrupted_connections
from common.deadline import DeadlineExceeded, deadline

logger = logging.getLogger(__name__)

# --- Liveness and readiness -------------------------------------------------------------------


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
    return None


def _check_migrations() -> str | None:
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        return gettext("%(count)d migrations not applied (first: %(first)s)") % {
            "count": len(pending),
            "first": f"{pending[0][0].app_label}.{pending[0][0].name}",
        }
    return None


def _check_broker() -> str | None:
    from config.celery import app as celery_app

    # Reading the configuration runs config.celery's hook that creates the filesystem broker's folders, as
    # the first enqueue would: a fresh web process is ready, a lost or unmounted folder is not.
    celery_app.conf.broker_url  # noqa: B018
    folders: list[Path] = list(getattr(settings, "CELERY_BROKER_FOLDERS", []))
    if folders:
        # The filesystem transport "connects" whatever the disk holds; its folders are what the worker reads.
        missing = [str(folder) for folder in folders if not folder.is_dir()]
        return gettext("broker folders missing: %(folders)s") % {"folders": ", ".join(missing)} if missing else None
    timeout = settings.READYZ_BROKER_TIMEOUT
    connection = celery_app.connection_for_read(
        connect_timeout=timeout, transport_options={"socket_connect_timeout": timeout, "socket_timeout": timeout}
    )
    try:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
    finally:
        connection.release()
    return None


# A file every admin page links to: when it cannot be served, the admin answers 500 on every page.
_PROBED_STATIC_FILE = "admin/css/base.css"


def _check_static_files() -> str | None:
    """The static files are where the process serves them from: collected (whitenoise's manifest storage reads
    its manifest once, at start) or, in DEBUG, found in the apps' folders."""
    from django.contrib.staticfiles import finders
    from django.contrib.staticfiles.storage import staticfiles_storage

    name = _PROBED_STATIC_FILE
    if getattr(settings, "WHITENOISE_USE_FINDERS", False):
        return None if finders.find(name) else gettext("static file %(name)s not found") % {"name": name}
    hint = {"name": name, "root": str(settings.STATIC_ROOT)}
    if hasattr(staticfiles_storage, "stored_name"):  # a manifest storage: pages fail on a file missing from it
        try:
            name = staticfiles_storage.stored_name(name)
        except ValueError:
            return gettext("static files not collected: %(name)s is not in the manifest under %(root)s") % hint
    if not staticfiles_storage.exists(name):
        return gettext("static files not collected: %(name)s is missing under %(root)s") % hint
    return None


_CHECKS: dict[str, Callable[[], str | None]] = {
    "database": _check_database,
    "migrations": _check_migrations,
    "broker": _check_broker,
    "static": _check_static_files,
}
# Checks that wait on another server: each gets at most a third of READYZ_TIMEOUT, so one frozen dependency
# leaves time to check the others.
_REMOTE = frozenset({"database", "migrations", "broker"})


def _run_check(name: str, check: Callable[[], str | None], seconds: float) -> str | None:
    """``check``'s problem, or the reason it failed; bounded by ``seconds`` (in the main thread: common.deadline)."""
    try:
        with deadline(seconds):
            return check()
    except DeadlineExceeded:
        # A query interrupted mid-way leaves its connection unusable (and its server may be frozen).
        close_interrupted_connections()
        logger.warning("readiness check %s gave no answer within %.1f s", name, seconds)
        return gettext("no answer within %(seconds)s s") % {"seconds": f"{seconds:g}"}
    except Exception as exc:  # noqa: BLE001 - any failure of a dependency means "not ready"
        logger.warning("readiness check %s failed: %s", name, exc, exc_info=True)
        return type(exc).__name__


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every check passes; 503 naming each failing part, within READYZ_TIMEOUT. Errors are named by type
    only in the body (a broker URL in an exception message may carry a password); the full error goes to the log.
    """
    total = settings.READYZ_TIMEOUT
    ends = time.monotonic() + total
    checks: dict[str, dict[str, str]] = {}
    for name, check in _CHECKS.items():
        remaining = ends - time.monotonic()
        if name == "migrations" and checks["database"]["status"] != "ok":
            checks[name] = {"status": "unknown", "error": gettext("the database is unreachable")}
            continue
        if remaining <= 0:
            checks[name] = {"status": "unknown", "error": gettext("not checked: out of time")}
            continue
        problem = _run_check(name, check, min(remaining, total / 3) if name in _REMOTE else remaining)
        checks[name] = {"status": "ok"} if problem is None else {"status": "fail", "error": problem}
    failing = [name for name, result in checks.items() if result["status"] != "ok"]
    return JsonResponse(
        {"status": "fail" if failing else "ok", "failing": failing, "checks": checks},
        status=503 if failing else 200,
    )


_PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": healthz,
    "/healthz/": healthz,
    "/readyz": readyz,
    "/readyz/": readyz,
}


class ProbeMiddleware:
    """Answers /healthz and /readyz before anything checks the Host header or redirects to HTTPS."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = _PROBES.get(request.path_info)
        if probe is not None and request.method in {"GET", "HEAD"}:
            return probe(request)
        return self.get_response(request)


# --- Request metrics ------------------------------------------------------------------------

# Label values are bounded: a method outside this set and an unresolved URL each count as one value,
# so a scanner probing random paths cannot grow the number of series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter(
    "fleetpatch_http_requests",
    "HTTP requests answered, by method, view and status code.",
    ["method", "view", "status"],
)
LATENCY = Histogram(
    "fleetpatch_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and view.",
    ["method", "view"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class RequestMetricsMiddleware:
    """Counts and times every request by the view that answered it (its URL name, not its path)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        method = request.method if request.method in _METHODS else "other"
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match is not None else "<unresolved>"
        REQUESTS.labels(method=method, view=view, status=str(response.status_code)).inc()
        LATENCY.labels(method=method, view=view).observe(elapsed)
        return response


# --- Fleet gauges, read at scrape time ------------------------------------------------------


class FleetCollector:
    """Fleet gauges computed from the database when Prometheus scrapes, in four small queries.

    Device counts come from ``DeviceTally`` (a few hundred rows the sweep rewrites), not from a scan of
    the devices table: a scrape costs the same for ten devices and for a million, and is as fresh as the
    last sweep, which ``fleetpatch_last_sweep_timestamp_seconds`` tells.
    """

    def collect(self) -> Iterator[Metric]:
        from alerts.choices import DeliveryStatus
        from alerts.models import DigestDelivery
        from devices.choices import BatteryStatus, ComplianceStatus
        from devices.models import DeviceTally, TaskDelivery

        devices = GaugeMetricFamily(
            "fleetpatch_devices",
            "Active devices by organisation and compliance status, as of the last sweep.",
            labels=["organisation", "status"],
        )
        batteries = GaugeMetricFamily(
            "fleetpatch_devices_battery",
            "Active devices by organisation and battery status, as of the last sweep.",
            labels=["organisation", "battery_status"],
        )
        by_status: dict[tuple[str, str], int] = {}
        by_battery: dict[tuple[str, str], int] = {}
        organisations: set[str] = set()
        last_sweep = None
        rows = (
            DeviceTally.objects.values("organisation__slug", "compliance_status", "battery_status")
            .annotate(devices=Sum("count"), computed_at=Max("computed_at"))
            .order_by()
        )
        for row in rows:
            slug = row["organisation__slug"]
            organisations.add(slug)
            status_key = (slug, row["compliance_status"])
            battery_key = (slug, row["battery_status"])
            by_status[status_key] = by_status.get(status_key, 0) + row["devices"]
            by_battery[battery_key] = by_battery.get(battery_key, 0) + row["devices"]
            if last_sweep is None or row["computed_at"] > last_sweep:
                last_sweep = row["computed_at"]
        # Every status of every organisation, zeros included: a series that vanishes reads as "no data".
        for slug in sorted(organisations):
            for status in ComplianceStatus.values:
                devices.add_metric([slug, status], by_status.get((slug, status), 0))
            for status in BatteryStatus.values:
                batteries.add_metric([slug, status], by_battery.get((slug, status), 0))
        yield devices
        yield batteries

        # The last finished sweep run says when and how long; before the first one (tallies written by an
        # older version, or by hand), the tallies' own time is still the truest "last sweep".
        from devices.models import SweepRun

        run = SweepRun.objects.filter(finished_at__isnull=False).order_by("-finished_at").first()
        if run is not None:
            last_sweep = run.finished_at
            yield GaugeMetricFamily(
                "fleetpatch_sweep_duration_seconds",
                "How long the last finished compliance sweep took, from its start to its tallies.",
                value=run.duration.total_seconds(),
            )
            yield GaugeMetricFamily(
                "fleetpatch_last_sweep_devices_updated",
                "Devices whose stored compliance the last finished sweep changed.",
                value=run.devices_updated,
            )
            yield GaugeMetricFamily(
                "fleetpatch_last_sweep_failed_ranges",
                "Id ranges the last finished sweep gave up after their retries (0 when it succeeded).",
                value=run.ranges_failed,
            )
        if last_sweep is not None:
            yield GaugeMetricFamily(
                "fleetpatch_last_sweep_timestamp_seconds",
                "When the compliance sweep last counted the fleet (Unix time).",
                value=last_sweep.timestamp(),
            )

        yield GaugeMetricFamily(
            "fleetpatch_tasks_given_up",
            "Celery tasks given up after killing their worker CELERY_TASK_MAX_STARTS times (admin: unfinished tasks).",
            value=TaskDelivery.objects.filter(poisoned_at__isnull=False).count(),
        )

        deliveries = GaugeMetricFamily(
            "fleetpatch_digest_deliveries",
            "Email digest deliveries ever recorded, by status.",
            labels=["status"],
        )
        counts = dict(DigestDelivery.objects.values_list("status").annotate(n=Count("id")).order_by())
        for status in DeliveryStatus.values:
            deliveries.add_metric([status], counts.get(status, 0))
        yield deliveries


def _process_registry() -> CollectorRegistry:
    """The request metrics of every web process when gunicorn runs several (prometheus_client's
    multiprocess mode, switched on by PROMETHEUS_MULTIPROC_DIR), else those of this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry
    return REGISTRY


def _authorised(request: HttpRequest) -> bool:
    expected = settings.METRICS_TOKEN
    scheme, _space, offered = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not offered:
        return False
    return hmac.compare_digest(offered.strip().encode(), expected.encode())


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_TOKEN:
        # Not configured: the endpoint does not exist, rather than being open to anyone.
        raise Http404
    if not _authorised(request):
        response = HttpResponse(gettext("A valid metrics token is required."), status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    # One registry per scrape, so the fleet gauges are read now and the output has a single OpenMetrics "# EOF".
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(_process_registry())
    scraped.register(FleetCollector())
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(scraped), content_type=content_type)
