"""Private services the fault tests may stop: a Redis server, a PostgreSQL cluster, a gunicorn server.

The machine's shared PostgreSQL and Redis serve every other test (and other people): a test that stops
a service stops one of its own, started here on a free port with its data in a temporary directory.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1) -> None:
    """Polls ``predicate`` until it holds; fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def stop_process(process: subprocess.Popen, *, timeout: float = 20) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


@contextlib.contextmanager
def frozen(pid: int, *, with_children: bool = False) -> Iterator[None]:
    """The process (and its children) stopped by SIGSTOP for the block: a frozen server, whose kernel still
    accepts connections and acknowledges data while nothing answers. SIGCONT always follows."""
    stopped: list[int] = []
    try:
        os.kill(pid, signal.SIGSTOP)
        stopped.append(pid)
        # Read once the parent is stopped: it cannot fork a new child (a PostgreSQL backend) after this list.
        for child in children(pid) if with_children else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGSTOP)
                stopped.append(child)
        yield
    finally:
        for stopped_pid in reversed(stopped):
            with contextlib.suppress(ProcessLookupError):
                os.kill(stopped_pid, signal.SIGCONT)


# --- Redis ----------------------------------------------------------------------------------------
class PrivateRedis:
    """A throwaway ``redis-server`` (no persistence) that a test may stop and start again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[PrivateRedis]:
        """A started server, stopped on the way out (unless the test stopped it already)."""
        server = cls()
        server.start()
        try:
            yield server
        finally:
            if server.process is not None:
                server.stop()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise FileNotFoundError("redis-server is not installed")
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, timeout=20, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
        wait_until(lambda: not port_open(self.port), timeout=20, what="redis-server to stop")

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


# --- PostgreSQL -----------------------------------------------------------------------------------
def _postgres_bin(name: str) -> str:
    """A server binary (initdb, pg_ctl): Debian keeps them out of PATH, under /usr/lib/postgresql/<major>/bin."""
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    if candidates:
        return str(candidates[-1])
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"PostgreSQL's {name} is not installed")
    return found


class PrivatePostgres:
    """A PostgreSQL cluster of its own in a temporary directory, on a free port, with trust authentication.

    initdb refuses to run as root (CI runs as root): then the cluster belongs to the ``postgres`` system user
    and its commands run through ``runuser``.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="fleetpatch-pg-"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str, timeout: float = 60) -> None:
        subprocess.run([*self._as, *command], check=True, capture_output=True, timeout=timeout)

    def init(self) -> None:
        self._run(
            _postgres_bin("initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )

    def start(self) -> None:
        # Unix socket in our own directory: the shared server's /var/run/postgresql is not ours to touch.
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(_postgres_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: every open connection is terminated and in-flight transactions roll back."""
        self._run(_postgres_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def frozen(self) -> contextlib.AbstractContextManager[None]:
        """Every process of the cluster (postmaster and backends) stopped by SIGSTOP for the block."""
        return frozen(int((self.data / "postmaster.pid").read_text().split()[0]), with_children=True)

    def copy_database(self, source_url: str, database: str) -> None:
        """Creates ``database`` here as a copy (schema and rows) of the database at ``source_url``."""
        target = self.url("postgres")
        subprocess.run(["psql", target, "-qc", f'CREATE DATABASE "{database}"'], check=True, capture_output=True)
        dump = subprocess.run(
            ["pg_dump", "--no-owner", "--no-privileges", source_url], check=True, capture_output=True, timeout=120
        )
        subprocess.run(
            ["psql", self.url(database), "-q", "-v", "ON_ERROR_STOP=1"],
            input=dump.stdout,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            if self.running():
                self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


# --- gunicorn -------------------------------------------------------------------------------------
_collected_static: dict[str, str] = {}


def collected_static_root() -> str:
    """A STATIC_ROOT filled by a real ``collectstatic`` (whitenoise's manifest storage, as the Docker image
    builds it), once per test session: without it every admin page is a 500 and /readyz fails on it."""
    if "root" not in _collected_static:
        root = tempfile.mkdtemp(prefix="fleetpatch-static-")
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"],
            cwd=ROOT,
            env={**os.environ, "DEBUG": "false", "STATIC_ROOT": root},
            check=True,
            capture_output=True,
            timeout=120,
        )
        _collected_static["root"] = root
    return _collected_static["root"]


def start_gunicorn(env: dict[str, str], *, workers: int, log_path: Path) -> tuple[subprocess.Popen, int]:
    """FleetPatch's WSGI application under gunicorn sync workers, as in production; waits for /healthz."""
    port = free_port()
    server_env = {
        "STATIC_ROOT": collected_static_root(),
        **env,
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        # The tests measure behaviour under load, not the per-client throttle (unless they set a rate).
        "API_THROTTLE_RATE": env.get("API_THROTTLE_RATE", "1000000/minute"),
        "LOG_LEVEL": "WARNING",
    }
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--workers",
                str(workers),
                "--bind",
                f"127.0.0.1:{port}",
                "--timeout",
                "120",
                "--graceful-timeout",
                "5",
            ],
            cwd=ROOT,
            env=server_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            return request(port, "GET", "/healthz")[0] == 200
        except OSError:
            return False

    wait_until(answers, timeout=60, what="gunicorn to answer /healthz")
    return process, port


def request(
    port: int, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, bytes, dict[str, str]]:
    """One HTTP request on a fresh connection (sync workers close it after each); JSON-encodes ``body``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body, default=str).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


@contextlib.contextmanager
def gunicorn(env: dict[str, str], *, workers: int, log_path: Path) -> Iterator[int]:
    """A gunicorn server for the block; yields its port; its log is printed (pytest shows it on failure)."""
    process, port = start_gunicorn(env, workers=workers, log_path=log_path)
    try:
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        print(f"--- gunicorn log ---\n{log_path.read_text()[-8000:]}")


# --- Celery worker --------------------------------------------------------------------------------
def start_celery_worker(
    env: dict[str, str], *, log_path: Path, name: str, queues: str | None = None, pool: str = "solo"
) -> subprocess.Popen:
    """A real ``celery worker`` consuming ``queues`` (comma-separated) or, by default, every queue the settings
    declare. Solo pool by default: the process that runs the task is the one a test may kill. With
    ``pool="prefork"`` (one child, as production runs) the task runs in a child the test may kill instead, and
    the worker requeues its message at once, as it does when the kernel kills a child out of memory."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool",
                pool,
                *(["--concurrency", "1"] if pool == "prefork" else []),
                "--loglevel",
                "INFO",
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
                "--hostname",
                f"{name}-{os.getpid()}@%h",
                *(["--queues", queues] if queues else []),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the Celery worker exited:\n{log_path.read_text()[-3000:]}")
        return b"ready." in log_path.read_bytes()

    wait_until(ready, timeout=60, what="the Celery worker to be ready", interval=0.2)
    return process


def children(pid: int) -> list[int]:
    """The process ids of ``pid``'s children (Linux)."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def send_task(env: dict[str, str], name: str, *args: Any) -> None:
    """Sends a task by name (and JSON arguments) through the broker of ``env``, as beat does (``celery call``)."""
    subprocess.run(
        [sys.executable, "-m", "celery", "-A", "config", "call", name, *(["--args", json.dumps(args)] if args else [])],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
