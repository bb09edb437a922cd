"""Soak test: the production stack without Docker under mixed load, watching errors, latency and memory.

    .venv/bin/python bench/soak.py [--duration 600] [--devices 20000] \
        [--database-url postgres://postgres@127.0.0.1:5432/fp_soak] \
        [--broker-url redis://127.0.0.1:6379/8] [--cache-url redis://127.0.0.1:6379/9] [--output PATH]

The database named in --database-url is dropped and recreated, and the two Redis databases are emptied:
give it ones of its own.

1. Prepare: recreate the database, empty the broker and cache databases, migrate, collect the static files
   into a scratch folder (whitenoise's manifest storage, as in the image), seed ``seed_demo --devices N``.
   Give each organisation an API client (read, report) and its manager a password; add, per organisation, a
   digest on a cron of every minute that sends even when empty; reschedule beat's sweep and digest
   dispatcher to every --sweep-every and --digest-every seconds; ANALYZE, as autovacuum would after the seed.
   On a server with autovacuum off (a development one), VACUUM (ANALYZE) runs every --vacuum-every seconds
   in its place during the load, as production's autovacuum would.
2. Start, as docker-compose.yml does but on loopback: gunicorn (--web-workers sync workers), a Celery worker
   (every queue, --worker-concurrency children) and Celery beat (django-celery-beat's DatabaseScheduler), with
   production settings (DEBUG off, a random SECRET_KEY, JSON logs, Redis cache and broker, SMTP to an aiosmtpd
   sink in this process). Every request carries ``X-Forwarded-Proto: https`` as the TLS proxy in front would,
   so HTTPS redirects, HSTS and secure cookies stay as in production. Wait for /readyz.
3. Log each manager in through the admin's login form; prime every request kind once per client.
4. For --duration seconds, --clients threads send a paced mix of --rate requests/s: single and bulk
   check-ins, API reads (device list, device detail, compliance summary), admin pages (dashboard, device
   list, device timeline) and /metrics. Meanwhile beat fires sweeps and digest dispatches, and a sampler
   reads each process's VmRSS from /proc/<pid>/status every --sample-every seconds.
5. Stop everything (SIGTERM, then SIGKILL after a grace period) and count errors: any 5xx, unexpected
   status, connection error, check-in item refused, ERROR/CRITICAL log line or traceback, process that died
   or was replaced, secret (token, password, keys) found in a log, and no sweep or no digest when the run
   was long enough for one.
6. Memory verdict, per process: the median RSS of the last third of the run (after the warm-up) against the
   median of the first third. Flat when it grew by at most --max-growth-pct percent or --max-growth-mb MiB,
   whichever is larger: the floor absorbs allocator noise on small processes, the percentage a leak's trend.
7. Print the summary, write --output (bench/results/soak.json), exit 1 when there was any error (and 2 when
   --fail-on-growth and the memory was not flat).
"""

from __future__ import annotations

import argparse
import ctypes
import http.client
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/fp_soak"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/8"
DEFAULT_CACHE_URL = "redis://127.0.0.1:6379/9"
CELERY_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
BULK_SIZE = 100
STOP_GRACE_SECONDS = 20.0

# Request kinds and their share of the mix: mostly what MDMs do (check-ins, reads), some people in the admin.
WEIGHTS = {
    "checkin_single": 30,
    "checkin_bulk": 6,
    "api_device_list": 14,
    "api_device_detail": 14,
    "api_compliance_summary": 8,
    "admin_dashboard": 6,
    "admin_device_list": 8,
    "admin_device_timeline": 8,
    "metrics": 2,
}


# --- processes ---------------------------------------------------------------------------------------------
_PRCTL = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """Runs in the child before exec: Linux SIGTERMs it if this script dies, so no server outlives a crash."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Service:
    """One long-running process of the stack, its output going to a log file in the work folder."""

    name: str
    argv: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str], cwd: Path) -> None:
        with self.log.open("ab") as out:
            # Started before this script runs any thread: preexec_fn is unsafe once threads exist.
            self.process = subprocess.Popen(
                self.argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,
                preexec_fn=_die_with_parent,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def terminate(self) -> None:
        """SIGTERM: gunicorn's graceful stop, Celery's warm shutdown (running tasks finish)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, deadline: float) -> str:
        """Waits until ``deadline`` (monotonic), then SIGKILLs the group; says how the process ended."""
        if self.process is None:
            return "not started"
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(self.process.pid)
            self.process.wait()
            return "killed after the grace period"
        _kill_group(self.process.pid)  # anything its children left behind
        return f"exit code {self.process.returncode}"


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _children(pid: int) -> list[int]:
    """Direct children of ``pid``, from /proc/*/stat (no psutil)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: fields restart after the last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def _rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- HTTP --------------------------------------------------------------------------------------------------
class ProxiedHttp:
    """Loopback HTTP as the TLS proxy would forward it: ``X-Forwarded-Proto: https`` on every request.

    One connection per request: gunicorn's sync workers close it after each response anyway.
    """

    def __init__(self, port: int, timeout: float = 60.0) -> None:
        self.port = port
        self.timeout = timeout
        self.origin = f"https://127.0.0.1:{port}"

    def request(
        self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, list[str]], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            connection.request(method, path, body=body, headers={"X-Forwarded-Proto": "https", **(headers or {})})
            response = connection.getresponse()
            payload = response.read()
            received: dict[str, list[str]] = defaultdict(list)
            for name, value in response.getheaders():
                received[name.lower()].append(value)
            return response.status, received, payload
        finally:
            connection.close()


def admin_login(http_: ProxiedHttp, username: str, password: str) -> str:
    """Logs in through the admin's own form (CSRF token, Referer as a browser sends it over HTTPS) and
    returns the Cookie header of the session. Secure cookies are handled here, not by a cookie jar that would
    refuse them over the loopback's plain HTTP."""
    status, headers, body = http_.request("GET", "/admin/login/?next=/admin/")
    if status != 200:
        raise RuntimeError(f"GET /admin/login/ answered {status}")
    cookies = SimpleCookie()
    for value in headers.get("set-cookie", []):
        cookies.load(value)
    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body)
    if match is None or "csrftoken" not in cookies:
        raise RuntimeError("the admin login page carries no CSRF token")
    form = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": match.group(1).decode(),
            "username": username,
            "password": password,
            "next": "/admin/",
        }
    ).encode()
    status, headers, body = http_.request(
        "POST",
        "/admin/login/?next=/admin/",
        body=form,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={cookies['csrftoken'].value}",
            "Referer": f"{http_.origin}/admin/login/",
            "Origin": http_.origin,
        },
    )
    for value in headers.get("set-cookie", []):
        cookies.load(value)
    if status != 302 or "sessionid" not in cookies:
        raise RuntimeError(f"the admin login of {username} failed: {status} {body[:200]!r}")
    return f"sessionid={cookies['sessionid'].value}; csrftoken={cookies['csrftoken'].value}"


# --- load --------------------------------------------------------------------------------------------------
@dataclass
class Organisation:
    """What the load needs of one organisation: its token, its manager's session, some devices."""

    pk: int
    token: str
    manager: str = ""
    session_cookie: str = ""
    devices: list[tuple[int, str, int, str, str, str]] = field(default_factory=list)  # pk, serial, model, ...


@dataclass
class Sample:
    kind: str
    at: float
    seconds: float
    status: int
    error: str | None


class Load:
    """The paced mix of requests: every thread keeps its share of --rate, and records every request."""

    def __init__(
        self, http_: ProxiedHttp, organisations: list[Organisation], newest: dict[int, tuple[str, str, str]], *,
        metrics_token: str, seed: int,
    ) -> None:  # fmt: skip
        self.http = http_
        self.organisations = organisations
        self.newest = newest
        self.metrics_token = metrics_token
        self.seed = seed
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self.started = time.monotonic()

    # One method per kind; each returns (status, error or None).
    def _api(self, org: Organisation, method: str, path: str, payload: Any = None) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {org.token}", "Accept": "application/json"}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        status, _, data = self.http.request(method, path, body=body, headers=headers)
        return status, data

    def _report(self, rng: random.Random, device: tuple[int, str, int, str, str, str]) -> dict:
        _pk, serial, model_id, build, android, patch = device
        # Half the reports install the model's newest build: statuses move, so sweeps and digests have work.
        if rng.random() < 0.5 and model_id in self.newest:
            build, android, patch = self.newest[model_id]
        return {
            "serial": serial,
            "reported_at": _now_iso(),
            "build_number": build,
            "android_version": android,
            "security_patch_level": patch or None,
            "battery_level": rng.randint(5, 100),
            "battery_health": rng.randint(60, 100),
        }

    def checkin_single(self, rng: random.Random, org: Organisation) -> tuple[int, str | None]:
        status, _ = self._api(org, "POST", "/api/v1/checkins/", self._report(rng, rng.choice(org.devices)))
        return status, None if status in (200, 201) else f"HTTP {status}"

    def checkin_bulk(self, rng: random.Random, org: Organisation) -> tuple[int, str | None]:
        devices = rng.sample(org.devices, min(BULK_SIZE, len(org.devices)))
        status, data = self._api(org, "POST", "/api/v1/checkins/", [self._report(rng, d) for d in devices])
        if status != 200:
            return status, f"HTTP {status}"
        if json.loads(data).get("errors"):
            return status, "check-in item refused"
        return status, None

    def api_device_list(self, rng: random.Random, org: Organisation) -> tuple[int, str | None]:
        query = rng.choice(["", "?compliance_status=behind", "?compliance_status=critical&battery_status=due"])
        status, _ = self._api(org, "GET", f"/api/v1/devices/{query}")
        return status, None if status == 200 else f"HTTP {status}"

    def api_device_detail(self, rng: random.Random, org: Organisation) -> tuple[int, str | None]:
        status, _ = self._api(org, "GET", f"/api/v1/devices/{rng.choice(org.devices)[0]}/")
        return status, None if status == 200 else f"HTTP {status}"

    def api_compliance_summary(self, rng: random.Random, org: Organisation) -> tuple[int, str | None]:
        status, _ = self._api(org, "GET", "/api/v1/compliance/summary/")
        return status, None if status == 200 else f"HTTP {status}"

    def _admin(self, org: Organisation, path: str) -> tuple[int, str | None]:
        status, headers, _ = self.http.request("GET", path, headers={"Cookie": org.session_cookie})
        if status == 302:
            return status, f"HTTP 302 to {headers.get('location', ['?'])[0]} (session lost?)"
        return status, None if status == 200 else f"HTTP {status}"

    def admin_dashboard(self, rng: random.Random, org: Organisation) -> tuple[int, str | None]:
        return self._admin(org, f"/admin/?organisation={org.pk}")

    def admin_device_list(self, rng: random.Random, org: Organisation) -> tuple[int, str | None]:
        query = rng.choice(["", "?compliance_status__exact=behind", f"?q={rng.choice(org.devices)[1]}"])
        return self._admin(org, f"/admin/devices/device/{query}")

    def admin_device_timeline(self, rng: random.Random, org: Organisation) -> tuple[int, str | None]:
        return self._admin(org, f"/admin/devices/device/{rng.choice(org.devices)[0]}/timeline/")

    def metrics(self, rng: random.Random, org: Organisation) -> tuple[int, str | None]:
        status, _, _ = self.http.request("GET", "/metrics", headers={"Authorization": f"Bearer {self.metrics_token}"})
        return status, None if status == 200 else f"HTTP {status}"

    def one(self, kind: str, rng: random.Random) -> None:
        org = rng.choice(self.organisations)
        started = time.monotonic()
        try:
            status, error = getattr(self, kind)(rng, org)
        except TimeoutError:
            status, error = 0, "timeout"
        except (OSError, http.client.HTTPException) as exc:
            status, error = 0, f"connection error ({type(exc).__name__})"
        elapsed = time.monotonic() - started
        if status >= 500:
            error = f"HTTP {status}"
        with self._lock:
            self.samples.append(Sample(kind, started - self.started, elapsed, status, error))

    def prime(self, clients: int) -> None:
        """Every kind once per client thread, concurrently, so each web worker has loaded what it serves."""
        threads = [
            threading.Thread(target=lambda i=i: [self.one(kind, random.Random(self.seed - i)) for kind in WEIGHTS])
            for i in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def run(self, *, clients: int, rate: float, seconds: float) -> None:
        self.samples = []
        self.started = time.monotonic()
        deadline = self.started + seconds
        kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
        interval = clients / rate

        def loop(index: int) -> None:
            rng = random.Random(self.seed + index)
            next_at = time.monotonic() + rng.random() * interval  # spread the threads' first requests
            while True:
                now = time.monotonic()
                if next_at > now:
                    time.sleep(next_at - now)
                if time.monotonic() >= deadline:
                    return
                self.one(rng.choices(kinds, weights)[0], rng)
                # Paced, not flooding: a slow server lowers the rate achieved, and the summary says so.
                next_at = max(next_at + interval, time.monotonic() - interval)

        threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _now_iso() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


# --- memory ------------------------------------------------------------------------------------------------
class MemorySampler(threading.Thread):
    """Reads VmRSS of every process of the stack every ``every`` seconds; children are found anew each time,
    so a web worker that gunicorn replaced shows up as a new process (and is reported)."""

    def __init__(self, services: dict[str, Service], every: float) -> None:
        super().__init__(daemon=True)
        self.services = services
        self.every = every
        self.started = time.monotonic()
        self.series: dict[str, list[tuple[float, int]]] = defaultdict(list)
        self.stopping = threading.Event()

    def processes(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for name, service in self.services.items():
            if service.process is None or service.process.poll() is not None:
                continue
            found[f"{name} main"] = service.pid
            label = {"web": "web worker", "worker": "worker pool child", "beat": "beat child"}[name]
            for pid in _children(service.pid):
                found[f"{label} {pid}"] = pid
        return found

    def sample(self) -> None:
        at = time.monotonic() - self.started
        for name, pid in self.processes().items():
            rss = _rss_kib(pid)
            if rss is not None:
                self.series[name].append((at, rss))

    def run(self) -> None:
        while not self.stopping.is_set():
            self.sample()
            self.stopping.wait(self.every)


def memory_verdict(
    series: dict[str, list[tuple[float, int]]], *, start: float, end: float, max_growth_pct: float, max_growth_mb: float
) -> dict[str, dict]:
    """First third against last third of [start, end], per process, by median RSS (see the module's step 6)."""
    third = (end - start) / 3
    verdicts: dict[str, dict] = {}
    for name, points in sorted(series.items()):
        first = [rss for at, rss in points if start <= at < start + third]
        last = [rss for at, rss in points if end - third <= at <= end]
        if not first or not last:
            verdicts[name] = {"flat": None, "note": "not alive during the whole measured window"}
            continue
        first_mb, last_mb = statistics.median(first) / 1024, statistics.median(last) / 1024
        growth = last_mb - first_mb
        allowed = max(first_mb * max_growth_pct / 100, max_growth_mb)
        verdicts[name] = {
            "first_third_mb": round(first_mb, 1),
            "last_third_mb": round(last_mb, 1),
            "max_mb": round(max(rss for _, rss in points) / 1024, 1),
            "growth_mb": round(growth, 1),
            "growth_pct": round(100 * growth / first_mb, 1),
            "allowed_growth_mb": round(allowed, 1),
            "flat": growth <= allowed,
        }
    return verdicts


# --- logs --------------------------------------------------------------------------------------------------
_PLAIN_ERROR = re.compile(r"\[(ERROR|CRITICAL)\]|^Traceback |^\S+Error: ")


def log_errors(path: Path, secrets_: dict[str, str]) -> tuple[Counter, list[str]]:
    """Counts ERROR/CRITICAL lines (JSON or gunicorn's plain ones) and tracebacks, and any secret in the log."""
    errors: Counter = Counter()
    examples: list[str] = []
    text = path.read_text(errors="replace") if path.exists() else ""
    for name, value in secrets_.items():
        if value and value in text:
            errors[f"secret in the log: {name}"] += 1
    for line in text.splitlines():
        kind = None
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                entry = {}
            if entry.get("level") in ("ERROR", "CRITICAL"):
                kind = f"{entry['level']} log line ({entry.get('logger')})"
        elif _PLAIN_ERROR.search(line):
            kind = "error line or traceback"
        if kind:
            errors[kind] += 1
            if len(examples) < 5:
                examples.append(line[:500])
    return errors, examples


# --- preparation -------------------------------------------------------------------------------------------
def recreate_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urllib.parse.urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urllib.parse.urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def production_environment(args: argparse.Namespace, *, workdir: Path, port: int, smtp_port: int) -> dict[str, str]:
    """The environment of every process, as docker-compose.yml gives it, pointed at loopback services."""
    env = {
        name: value
        for name, value in os.environ.items()
        # Nothing of a developer's or a test run's configuration may leak into the production-like stack.
        if not name.startswith(
            ("DJANGO_", "CELERY_", "DEBUG", "TEST_", "EMAIL_", "DATABASE_", "CACHE_", "SECURE_", "PROMETHEUS_")
        )
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        # Production's HTTPS redirect stays on: the load sends X-Forwarded-Proto as the TLS proxy would.
        SECURE_SSL_REDIRECT="true",
        SITE_URL=f"https://127.0.0.1:{port}",
        DATABASE_URL=args.database_url,
        CELERY_BROKER_URL=args.broker_url,
        CACHE_URL=args.cache_url,
        EMAIL_URL=f"smtp://127.0.0.1:{smtp_port}",
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        METRICS_TOKEN=secrets.token_urlsafe(24),
        STATIC_ROOT=str(workdir / "static"),
        # Several gunicorn workers: /metrics adds them up from here (README, "Metrics"); emptied before the start.
        PROMETHEUS_MULTIPROC_DIR=str(workdir / "prometheus"),
        VAR_DIR=str(workdir / "var"),
        # The load generator stands in for many MDMs with one token per organisation: the per-client throttle
        # would turn its share of the rate into 429s that say nothing about the stack.
        API_THROTTLE_RATE="1000000/minute",
    )
    return env


def prepare(args: argparse.Namespace) -> tuple[list[Organisation], dict[int, tuple[str, str, str]], dict[str, str]]:
    """Steps 1 of the module docstring, in this process (Django set up with the stack's environment)."""
    import datetime as dt

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from alerts.models import AlertSubscription
    from devices.models import Device
    from fleet.models import Membership, Role
    from fleet.models import Organisation as OrganisationModel
    from fleet.services import api_client_create
    from updates.models import OSBuild

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    call_command("seed_demo", devices=args.devices, organisations=args.organisations, verbosity=0)

    passwords: dict[str, str] = {}
    organisations: list[Organisation] = []
    now = timezone.now()
    for organisation in OrganisationModel.objects.order_by("pk"):
        _client, token = api_client_create(organisation=organisation, name="soak", scopes=["read", "report"])
        org = Organisation(pk=organisation.pk, token=token)
        manager = (
            get_user_model()
            .objects.filter(memberships__organisation=organisation, memberships__role=Role.MANAGER)
            .order_by("pk")
            .first()
        )
        if manager is not None:
            password = secrets.token_urlsafe(18)
            manager.set_password(password)
            manager.save(update_fields=["password"])
            passwords[manager.get_username()] = password
        org.manager = manager.get_username() if manager else ""
        # A digest every minute, sent even when nothing is new: the digest path runs all along the soak.
        subscription = AlertSubscription(
            organisation=organisation,
            name="Soak: every minute",
            frequency="cron",
            cron="* * * * *",
            time_zone="UTC",
            send_when_empty=True,
            extra_recipients="soak@example.org",
            created_at=now - dt.timedelta(days=2),
        )
        subscription.full_clean()
        subscription.save()
        org.devices = [
            (pk, serial, model_id, build or "", android or "", patch.isoformat() if patch else "")
            for pk, serial, model_id, build, android, patch in Device.objects.filter(organisation=organisation)
            .order_by("?")
            .values_list(
                "pk", "serial", "model_id", "reported_build_number", "android_version", "security_patch_level"
            )[:5000]
        ]
        if org.devices:
            organisations.append(org)
    newest: dict[int, tuple[str, str, str]] = {}
    for model_id, number, android, patch in (
        OSBuild.objects.filter(organisation__isnull=True, channel="stable", is_revoked=False)
        .order_by("model_id", "-released_at")
        .values_list("model_id", "build_number", "android_version", "security_patch_level")
    ):
        newest.setdefault(model_id, (number, android, patch.isoformat()))
    assert Membership.objects.exists(), "seed_demo created no manager"

    # Beat's own schedule, rescheduled in its tables as an operator would in the admin's Periodic tasks.
    sweep_every, _ = IntervalSchedule.objects.get_or_create(every=args.sweep_every, period="seconds")
    digest_every, _ = IntervalSchedule.objects.get_or_create(every=args.digest_every, period="seconds")
    rescheduled = PeriodicTask.objects.filter(task="updates.sweep_compliance").update(
        interval=sweep_every, crontab=None
    ) + PeriodicTask.objects.filter(task="fleet.dispatch_digests").update(interval=digest_every, crontab=None)
    assert rescheduled == 2, "the sweep's or the digest dispatcher's periodic task is missing"
    PeriodicTask.objects.all().update(last_run_at=None)
    from django_celery_beat.models import PeriodicTasks

    PeriodicTasks.update_changed()
    # seed_demo writes with COPY and leaves the planner without statistics; autovacuum would ANALYZE within a
    # minute in production, before any real load. Done now so the first sweeps do not run on guesses.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    connection.close()
    return organisations, newest, passwords


def outcome_counts(started_at: Any) -> dict[str, int]:
    """What the stack did since it started (priming and load), read from the database."""
    from django.db import connection

    from alerts.choices import DeliveryStatus
    from alerts.models import DigestDelivery
    from devices.models import CheckIn, StatusChange

    counts = {
        "check_ins_stored": CheckIn.objects.filter(received_at__gte=started_at).count(),
        "status_changes": StatusChange.objects.filter(changed_at__gte=started_at).count(),
        "digests_sent": DigestDelivery.objects.filter(status=DeliveryStatus.SENT, created_at__gte=started_at).count(),
        # Failed or retrying: the SMTP sink accepts everything, so these are faults. Rows still claimed or being
        # sent are the last dispatch's, caught by the stop: reported, not counted as errors.
        "digests_failed": DigestDelivery.objects.filter(
            created_at__gte=started_at, status__in=[DeliveryStatus.FAILED, DeliveryStatus.RETRYING]
        ).count(),
        "digests_in_flight_at_stop": DigestDelivery.objects.filter(
            created_at__gte=started_at, status__in=[DeliveryStatus.CLAIMED, DeliveryStatus.SENDING]
        ).count(),
    }
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        counts["postgresql"] = cursor.fetchone()[0]
    connection.close()
    return counts


def autovacuum_enabled(url: str) -> bool:
    import psycopg

    with psycopg.connect(_libpq_url(url), autocommit=True) as connection:
        return connection.execute("SHOW autovacuum").fetchone()[0] == "on"


def _libpq_url(url: str) -> str:
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(scheme="postgresql"))


class VacuumStandIn(threading.Thread):
    """``VACUUM (ANALYZE)`` of the soak's database every ``every`` seconds, for servers with autovacuum off.

    A development server may run without autovacuum; production's never does (it is PostgreSQL's default, and
    the postgres image's). Without it, the devices table the check-ins update fills with dead rows and the
    planner keeps its empty-table guesses: a sweep of 20,000 devices went from 0.3 s to 31 s in ten minutes.
    That is the server's configuration, not the application's behaviour, so the soak reproduces production.
    """

    def __init__(self, url: str, every: float) -> None:
        super().__init__(daemon=True)
        self.url = _libpq_url(url)
        self.every = every
        self.runs = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        import psycopg

        while not self.stopping.wait(self.every):
            with psycopg.connect(self.url, autocommit=True) as connection:
                connection.execute("VACUUM (ANALYZE)")
            self.runs += 1


def task_runtimes(worker_log: str) -> dict[str, dict]:
    """Per task name, from Celery's trace lines: how many succeeded and their run time (median, max)."""
    seconds: dict[str, list[float]] = defaultdict(list)
    for name, value in re.findall(r"Task ([\w.]+)\[[^]]+\] succeeded in ([0-9.]+)s", worker_log):
        seconds[name].append(float(value))
    return {
        name: {"count": len(values), "p50_s": round(statistics.median(values), 3), "max_s": round(max(values), 3)}
        for name, values in sorted(seconds.items())
    }


class _Sink:
    """aiosmtpd handler: counts the messages (the digests) and keeps their subjects."""

    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        match = re.search(rb"^Subject: (.*)$", envelope.content, re.MULTILINE)
        self.subjects.append(match.group(1).decode(errors="replace").strip() if match else "")
        return "250 OK"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# --- main --------------------------------------------------------------------------------------------------
def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default %(default)s)")
    parser.add_argument("--devices", type=int, default=20_000, help="seed_demo's fleet size (default %(default)s)")
    parser.add_argument("--organisations", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("SOAK_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--broker-url", default=os.environ.get("SOAK_BROKER_URL", DEFAULT_BROKER_URL))
    parser.add_argument("--cache-url", default=os.environ.get("SOAK_CACHE_URL", DEFAULT_CACHE_URL))
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn sync workers (default %(default)s)")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="Celery prefork children")
    parser.add_argument("--clients", type=int, default=8, help="load threads (default %(default)s)")
    parser.add_argument("--rate", type=float, default=20, help="requests per second, all kinds (default %(default)s)")
    parser.add_argument("--sweep-every", type=int, default=30, help="seconds between beat's sweeps")
    parser.add_argument("--digest-every", type=int, default=20, help="seconds between beat's digest dispatches")
    parser.add_argument("--sample-every", type=float, default=None, help="seconds between RSS samples")
    parser.add_argument("--warmup", type=float, default=None, help="seconds left out of the memory verdict")
    parser.add_argument("--max-growth-pct", type=float, default=10.0)
    parser.add_argument("--max-growth-mb", type=float, default=8.0)
    parser.add_argument("--fail-on-growth", action="store_true", help="exit 2 when the memory is not flat")
    parser.add_argument(
        "--vacuum-every", type=float, default=60, help="seconds between VACUUM (ANALYZE) when autovacuum is off"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    parser.add_argument("--workdir", type=Path, default=None, help="logs and scratch files (default: a tmp dir)")
    args = parser.parse_args(argv)
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("the soak runs the production stack: give --database-url a postgres:// URL")
    if not args.broker_url.startswith("redis://") or not args.cache_url.startswith("redis://"):
        parser.error("the soak runs the production stack: give redis:// URLs for the broker and the cache")
    if args.sample_every is None:
        args.sample_every = max(1.0, min(5.0, args.duration / 60))
    if args.warmup is None:
        args.warmup = min(60.0, args.duration * 0.1)
    return args


def main(argv: list[str] | None = None) -> int:  # noqa: C901 - a benchmark script reads best top to bottom
    args = parse_arguments(argv)
    import tempfile

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fleetpatch-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    port, smtp_port = _free_port(), _free_port()
    env = production_environment(args, workdir=workdir, port=port, smtp_port=smtp_port)
    shutil.rmtree(env["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir()
    os.environ.clear()
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    load_before = os.getloadavg()
    script_started = time.monotonic()
    timings: dict[str, float] = {}

    def stop_on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop_on_signal)

    print(f"soak: work folder {workdir}; preparing {args.devices} devices on {args.database_url}", flush=True)
    started = time.monotonic()
    recreate_database(args.database_url)
    import redis

    for url in (args.broker_url, args.cache_url):
        redis.Redis.from_url(url).flushdb()
    organisations, newest, passwords = prepare(args)
    timings["prepare_seconds"] = round(time.monotonic() - started, 1)

    python = sys.executable
    services = {
        "web": Service(
            "web",
            [python, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers",
             str(args.web_workers), "--access-logfile", "-", "--timeout", "60"],
            workdir / "web.log",
        ),
        "worker": Service(
            "worker",
            # No --queues: one worker consumes every queue settings declare (docker-compose may split them).
            [python, "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO",
             "--concurrency", str(args.worker_concurrency), "--hostname", "soak@%h"],
            workdir / "worker.log",
        ),
        "beat": Service(
            "beat",
            [python, "-m", "celery", "-A", "config", "beat", "--scheduler", CELERY_SCHEDULER, "--loglevel", "INFO"],
            workdir / "beat.log",
        ),
    }  # fmt: skip
    errors: Counter = Counter()
    examples: list[str] = []
    stops: dict[str, str] = {}
    sampler = MemorySampler(services, args.sample_every)
    autovacuum_on = autovacuum_enabled(args.database_url)
    vacuum = None if autovacuum_on else VacuumStandIn(args.database_url, args.vacuum_every)
    if vacuum is not None:
        print(
            f"soak: this PostgreSQL runs with autovacuum off; VACUUM (ANALYZE) every {args.vacuum_every:g} s "
            "stands in for it, as production's autovacuum keeps the planner's statistics and dead rows in check",
            flush=True,
        )
    load: Load | None = None
    smtp = None
    sink = _Sink()
    stack_started_at = None
    try:
        from django.utils import timezone

        stack_started_at = timezone.now()
        started = time.monotonic()
        for service in services.values():
            service.start(env, workdir)
        import logging

        from aiosmtpd.controller import Controller

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # one INFO line per SMTP command otherwise

        smtp = Controller(sink, hostname="127.0.0.1", port=smtp_port)
        smtp.start()
        http_ = ProxiedHttp(port)
        deadline = time.monotonic() + 60
        while True:
            for service in services.values():
                if service.process is not None and service.process.poll() is not None:
                    raise RuntimeError(f"{service.name} exited with {service.process.returncode}: see {service.log}")
            try:
                if http_.request("GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("/readyz did not answer 200 within 60 s")
            time.sleep(0.3)
        timings["start_seconds"] = round(time.monotonic() - started, 1)
        for org in organisations:
            org.session_cookie = admin_login(http_, org.manager, passwords[org.manager])

        load = Load(http_, organisations, newest, metrics_token=env["METRICS_TOKEN"], seed=args.seed)
        load.prime(args.clients)
        for sample in load.samples:
            if sample.error:
                errors[f"{sample.kind}: {sample.error}"] += 1
        print(
            f"soak: stack ready in {timings['start_seconds']} s (prepared in {timings['prepare_seconds']} s); "
            f"{args.duration:.0f} s of load at {args.rate:g} requests/s from {args.clients} clients",
            flush=True,
        )
        sampler.started = time.monotonic()
        sampler.start()
        if vacuum is not None:
            vacuum.start()
        load.run(clients=args.clients, rate=args.rate, seconds=args.duration)
        sampler.stopping.set()
        sampler.join()
        pids_seen = {name for name in sampler.series}
        for service in services.values():
            if service.process is not None and service.process.poll() is not None:
                errors[f"{service.name} died during the run (exit code {service.process.returncode})"] += 1
        # gunicorn replaces a worker that crashed or timed out: a new pid among the web workers says so.
        initial_workers = {name for name, points in sampler.series.items() if points[0][0] <= args.sample_every}
        replaced = sorted(pids_seen - initial_workers)
        if replaced:
            errors["processes started during the run (a worker replaced)"] += len(replaced)
    except KeyboardInterrupt:
        print("soak: interrupted; stopping the stack", file=sys.stderr)
        errors["interrupted"] += 1
    except RuntimeError as failure:
        print(f"soak: {failure}", file=sys.stderr)
        errors[str(failure)] += 1
    finally:
        sampler.stopping.set()
        if vacuum is not None:
            vacuum.stopping.set()
        stopping = time.monotonic()
        # All at once: each stops on its own (the worker's warm shutdown finishes its running tasks).
        for service in services.values():
            service.terminate()
        for name, service in services.items():
            stops[name] = service.wait(stopping + STOP_GRACE_SECONDS)
        if smtp is not None:
            smtp.stop()
        timings["stop_seconds"] = round(time.monotonic() - stopping, 1)

    secrets_ = {
        **{f"{org.pk} API token": org.token for org in organisations},
        **{f"password of {user}": password for user, password in passwords.items()},
        "SECRET_KEY": env["SECRET_KEY"],
        "METRICS_TOKEN": env["METRICS_TOKEN"],
    }
    for service in services.values():
        found, seen = log_errors(service.log, secrets_)
        for kind, count in found.items():
            errors[f"{service.name} log: {kind}"] += count
        examples += [f"{service.name}: {line}" for line in seen]
    for name, how in stops.items():
        if how not in ("exit code 0", "not started"):
            errors[f"{name} did not stop cleanly ({how})"] += 1

    samples = load.samples if load is not None else []
    for sample in samples:
        if sample.error:
            errors[f"{sample.kind}: {sample.error}"] += 1
    requests: dict[str, dict] = {}
    for kind in WEIGHTS:
        seconds = [s.seconds for s in samples if s.kind == kind]
        if seconds:
            requests[kind] = {
                "count": len(seconds),
                "errors": sum(1 for s in samples if s.kind == kind and s.error),
                "p50_ms": round(1000 * percentile(seconds, 0.5), 1),
                "p99_ms": round(1000 * percentile(seconds, 0.99), 1),
                "max_ms": round(1000 * max(seconds), 1),
            }
    background = outcome_counts(stack_started_at) if stack_started_at is not None else {}
    worker_log = services["worker"].log.read_text(errors="replace") if services["worker"].log.exists() else ""
    # Celery's own trace lines ("Task <name>[<id>] succeeded in ..."): they outlive any change to the tasks' logs.
    for task, key in (
        ("updates.sweep_compliance", "sweeps_completed"),
        ("fleet.send_digest", "digest_tasks_completed"),
    ):
        background[key] = len(re.findall(rf"Task {re.escape(task)}\[[^]]+\] succeeded", worker_log))
    background["mail_received"] = len(sink.subjects)
    background["task_runtimes"] = task_runtimes(worker_log)
    background["autovacuum"] = autovacuum_on
    background["vacuum_standin_runs"] = vacuum.runs if vacuum is not None else 0
    if stack_started_at is not None:
        if args.duration >= args.sweep_every + 15 and background["sweeps_completed"] == 0:
            errors["no compliance sweep completed during the run"] += 1
        if args.duration >= args.digest_every + 15 and background.get("digests_sent", 0) == 0:
            errors["no digest sent during the run"] += 1
        if background.get("digests_failed"):
            errors["digests failed or retrying"] += background["digests_failed"]

    memory = memory_verdict(
        sampler.series,
        start=args.warmup,
        end=args.duration,
        max_growth_pct=args.max_growth_pct,
        max_growth_mb=args.max_growth_mb,
    )
    judged = [v["flat"] for v in memory.values() if v.get("flat") is not None]
    flat = bool(judged) and all(judged)
    total_errors = sum(errors.values())
    achieved = len(samples) / args.duration if samples else 0.0
    figures = {
        "what": "soak: gunicorn + Celery worker + beat on PostgreSQL and Redis under mixed load",
        "duration_seconds": args.duration,
        "devices": args.devices,
        "organisations": args.organisations,
        "web_workers": args.web_workers,
        "worker_concurrency": args.worker_concurrency,
        "clients": args.clients,
        "target_rate_per_second": args.rate,
        "achieved_rate_per_second": round(achieved, 1),
        "requests_total": len(samples),
        "errors_total": total_errors,
        "errors": dict(errors.most_common()),
        "error_examples": examples[:10],
        "requests": requests,
        "background": background,
        "memory_rule": (
            f"per process, median RSS of the last third of [{args.warmup:g} s, {args.duration:g} s] minus that of "
            f"the first third, at most max({args.max_growth_pct:g} %, {args.max_growth_mb:g} MiB)"
        ),
        "memory_verdict": "flat" if flat else "growing",
        "memory": memory,
        "memory_series_kib": {
            name: [[round(at, 1), rss] for at, rss in points] for name, points in sampler.series.items()
        },
        "stops": stops,
        **timings,
        "wall_clock_seconds": round(time.monotonic() - script_started, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "logs": str(workdir),
    }
    print_summary(figures)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"Written to {args.output}")
    if total_errors:
        return 1
    if args.fail_on_growth and not flat:
        return 2
    return 0


def print_summary(figures: dict) -> None:
    print(
        f"\n{figures['requests_total']} requests in {figures['duration_seconds']:g} s "
        f"({figures['achieved_rate_per_second']}/s of {figures['target_rate_per_second']:g}/s asked)"
    )
    print(f"{'request kind':<24}{'count':>7}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for kind, row in figures["requests"].items():
        print(f"{kind:<24}{row['count']:>7}{row['errors']:>8}{row['p50_ms']:>9}{row['p99_ms']:>9}{row['max_ms']:>9}")
    background = figures["background"]
    print(
        f"background: {background.get('sweeps_completed', 0)} sweeps, {background.get('digests_sent', 0)} digests "
        f"sent ({background.get('mail_received', 0)} mails received), {background.get('check_ins_stored', 0)} "
        f"check-ins stored, {background.get('status_changes', 0)} status changes"
    )
    for task, row in background.get("task_runtimes", {}).items():
        print(f"  task {task:<32} {row['count']:>5} runs, p50 {row['p50_s']} s, max {row['max_s']} s")
    if not background.get("autovacuum", True):
        print(f"  autovacuum off on this server: {background['vacuum_standin_runs']} VACUUM (ANALYZE) stood in")
    print(f"memory ({figures['memory_rule']}): {figures['memory_verdict'].upper()}")
    for name, row in figures["memory"].items():
        if row.get("flat") is None:
            print(f"  {name:<28} {row['note']}")
            continue
        print(
            f"  {name:<28} {row['first_third_mb']:>7} -> {row['last_third_mb']:>7} MiB "
            f"({row['growth_mb']:+.1f} MiB, {row['growth_pct']:+.1f} %, max {row['max_mb']}) "
            f"{'flat' if row['flat'] else 'GROWING'}"
        )
    print(f"errors: {figures['errors_total']}")
    for kind, count in figures["errors"].items():
        print(f"  {count:>6}  {kind}")
    for line in figures["error_examples"]:
        print(f"    e.g. {line}")


if __name__ == "__main__":
    sys.exit(main())
