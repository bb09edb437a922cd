"""The stack the soak runs (step 2 and 5): gunicorn, a Celery worker and beat as docker-compose.yml starts them,
an SMTP sink in this process, and what watches and stops them.

Processes are read from /proc (no psutil); every port is a free one the kernel picks on loopback.
"""

from __future__ import annotations

import argparse
import ctypes
import http.client
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CELERY_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
STOP_GRACE_SECONDS = 20.0
READY_TIMEOUT_SECONDS = 60

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


def free_port() -> int:
    """A loopback port nobody listens on, chosen by the kernel: soaks and test runs side by side never clash."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def stack_services(args: argparse.Namespace, *, workdir: Path, port: int) -> dict[str, Service]:
    """gunicorn, the Celery worker and beat, each logging to its own file in ``workdir``."""
    python = sys.executable
    return {
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


def stop_services(services: dict[str, Service]) -> dict[str, str]:
    """SIGTERMs every service, then waits for each up to the grace period; says how each one ended."""
    stopping = time.monotonic()
    # All at once: each stops on its own (the worker's warm shutdown finishes its running tasks).
    for service in services.values():
        service.terminate()
    return {name: service.wait(stopping + STOP_GRACE_SECONDS) for name, service in services.items()}


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


def wait_until_ready(services: dict[str, Service], http_: ProxiedHttp) -> None:
    """Polls /readyz until it answers 200; raises when a service exits first or after the timeout."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        for service in services.values():
            if service.process is not None and service.process.poll() is not None:
                raise RuntimeError(f"{service.name} exited with {service.process.returncode}: see {service.log}")
        try:
            if http_.request("GET", "/readyz")[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"/readyz did not answer 200 within {READY_TIMEOUT_SECONDS} s")
        time.sleep(0.3)


class Sink:
    """aiosmtpd handler: counts the messages (the digests) and keeps their subjects."""

    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        match = re.search(rb"^Subject: (.*)$", envelope.content, re.MULTILINE)
        self.subjects.append(match.group(1).decode(errors="replace").strip() if match else "")
        return "250 OK"


def start_smtp(sink: Sink, port: int) -> Any:
    """The SMTP server the stack's EMAIL_URL points at, in a thread of this process; returns its controller."""
    import logging

    from aiosmtpd.controller import Controller

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # one INFO line per SMTP command otherwise

    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    return controller


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
