#!/usr/bin/env python3
"""The ``make run`` supervisor: prepares the local database, then runs the web server and a Celery
worker (with beat embedded) together, and stops them together.

Standard library only, so it runs before anything else is known to work. Run it with the project's
virtualenv Python (``make run`` does): children are started with that same interpreter.

1. Refuse early if the port is taken (runserver would only say so after the migrations).
2. ``manage.py migrate``; ``manage.py seed_demo`` on the first run only (no Organisation yet);
   ``manage.py ensure_admin``, whose login line is printed again once the server answers.
3. Start each long-running child in its own process group, its output prefixed with its name.
   Own groups mean a Ctrl-C reaches the supervisor alone, which then stops every child once and in
   order: Celery gets a single SIGTERM (a warm shutdown) instead of a SIGINT straight to its pool.
4. On SIGINT/SIGTERM, or when one child exits, send SIGTERM to the children still running; after
   the grace period (or a second Ctrl-C) SIGKILL their whole process groups, so nothing outlives
   the supervisor. Exit 0 after a requested stop, non-zero when a child failed.

On Linux each child also gets PR_SET_PDEATHSIG, so even a SIGKILLed supervisor takes them along.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from gettext import gettext as _
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
GRACE_SECONDS = 15.0
CELERY_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# What the supervisor needs to know from Django, asked in a child so this script stays stdlib only.
PROBE = """
import json, django
django.setup()
from django.core.management import get_commands
from fleet.models import Organisation
print(json.dumps({"has_organisation": Organisation.objects.exists(), "has_seed_demo": "seed_demo" in get_commands()}))
"""


class Interrupted(Exception):
    """Raised from a signal handler while a preparation step runs, so that step's child is killed."""


class PreparationFailed(Exception):
    """A preparation step failed; its own output above says why."""


def say(message: str) -> None:
    print(f"{'run':<7}| {message}", flush=True)


# Looked up once here: the child, between fork and exec, should only make the call.
_PRCTL = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Runs in the child between fork and exec: ask Linux to SIGTERM it if the supervisor dies."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One long-running process and the partial line of output not printed yet."""

    name: str
    argv: Sequence[str]
    process: subprocess.Popen[bytes] | None = None
    pending: bytes = b""
    exit_code: int | None = None
    streaming: bool = False
    stop_sent_at: float | None = None

    def prefix(self, width: int) -> str:
        return f"{self.name:<{width}}| "


class Supervisor:
    """Starts children, relays their output line by line, and stops all of them together."""

    def __init__(self, children: list[Child], *, grace: float = GRACE_SECONDS, out: Callable[[str], None] = say):
        self.children = children
        self.grace = grace
        self.say = out
        self.width = max(7, *(len(child.name) + 1 for child in children))
        self.selector = selectors.DefaultSelector()
        self.stop_reason: str | None = None
        self.force = False
        self.failed = False

    # --- signals ----------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_reason is None:
            self.stop_reason = signal.Signals(signum).name
        elif signum == signal.SIGINT:
            # Only a person presses Ctrl-C twice; a repeated SIGTERM is usually make passing on the
            # one the whole process group already received, so it must not skip the warm shutdown.
            self.force = True

    # --- children ---------------------------------------------------------------------------
    def start(self, env: dict[str, str]) -> None:
        for child in self.children:
            if self.stop_reason is not None:
                break  # a signal arrived while starting: run() stops the ones already started
            child.process = subprocess.Popen(
                child.argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                process_group=0,
                # preexec_fn is unsafe with threads; this supervisor has none.
                preexec_fn=die_with_parent,
            )
            assert child.process.stdout is not None
            os.set_blocking(child.process.stdout.fileno(), False)
            self.selector.register(child.process.stdout, selectors.EVENT_READ, child)
            child.streaming = True
            self.say(
                _("started %(name)s (pid %(pid)d): %(command)s")
                % {
                    "name": child.name,
                    "pid": child.process.pid,
                    "command": " ".join(child.argv),
                }
            )

    def _relay(self, timeout: float) -> None:
        for key, _events in self.selector.select(timeout):
            child: Child = key.data
            try:
                data = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if not data:
                self.selector.unregister(key.fileobj)
                child.streaming = False
                self._flush(child, final=True)
                continue
            child.pending += data
            self._flush(child)

    def _flush(self, child: Child, *, final: bool = False) -> None:
        *lines, child.pending = child.pending.split(b"\n")
        if final and child.pending:
            lines.append(child.pending)
            child.pending = b""
        for line in lines:
            text = line.decode("utf-8", errors="replace").rstrip("\r")
            sys.stdout.write(child.prefix(self.width) + text + "\n")
        sys.stdout.flush()

    def _reap(self) -> None:
        for child in self.children:
            if child.exit_code is None and child.process is not None:
                code = child.process.poll()
                if code is not None:
                    child.exit_code = code
                    _kill_group(child, signal.SIGKILL)  # whatever it left behind in its group

    def running(self) -> list[Child]:
        return [child for child in self.children if child.process is not None and child.exit_code is None]

    def _request_stop(self) -> None:
        now = time.monotonic()
        for child in self.running():
            if child.stop_sent_at is None:
                child.stop_sent_at = now
                assert child.process is not None
                try:
                    child.process.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass

    # --- main loop --------------------------------------------------------------------------
    def run(self, on_tick: Callable[[], None] | None = None) -> int:
        """Relays output until every child has ended; returns the supervisor's exit code."""
        self.install_signal_handlers()
        try:
            while self.running() or any(child.streaming for child in self.children):
                self._relay(0.2)
                self._reap()
                if self.stop_reason is None:
                    ended = [child for child in self.children if child.exit_code is not None]
                    if ended:
                        first = ended[0]
                        self.failed = True
                        self.stop_reason = first.name
                        self.say(
                            _("%(name)s exited with code %(code)s; stopping the others")
                            % {"name": first.name, "code": first.exit_code}
                        )
                    elif on_tick is not None:
                        on_tick()
                if self.stop_reason is not None and self.running():
                    if not any(child.stop_sent_at for child in self.children) and not self.failed:
                        self.say(_("received %(signal)s; stopping") % {"signal": self.stop_reason})
                    self._request_stop()
                    self._enforce_grace()
                if not self.running():
                    # A grandchild may still hold a pipe open; its group was killed in _reap.
                    self._drain_after_exit()
        finally:
            for child in self.children:
                if child.process is not None and child.exit_code is None:
                    _kill_group(child, signal.SIGKILL)
                    child.exit_code = child.process.wait()
        self.say(_("stopped"))
        return 1 if self.failed else 0

    def _enforce_grace(self) -> None:
        now = time.monotonic()
        for child in self.running():
            assert child.stop_sent_at is not None
            if self.force or now - child.stop_sent_at > self.grace:
                self.say(_("%(name)s did not stop in time; killing it") % {"name": child.name})
                _kill_group(child, signal.SIGKILL)
                assert child.process is not None
                child.exit_code = child.process.wait()

    def _drain_after_exit(self) -> None:
        deadline = time.monotonic() + 2
        while any(child.streaming for child in self.children) and time.monotonic() < deadline:
            self._relay(0.1)
        for key in list(self.selector.get_map().values()):
            self.selector.unregister(key.fileobj)
            key.data.streaming = False
            self._flush(key.data, final=True)


def _kill_group(child: Child, sig: int) -> None:
    if child.process is None:
        return
    try:
        os.killpg(child.process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# --- preparation ----------------------------------------------------------------------------
def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def manage(*args: str, env: dict[str, str], capture: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        text=True,
        capture_output=capture,
        check=False,
    )


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def prepare(*, port: int, env: dict[str, str]) -> str | None:
    """Migrates, seeds on the first run and ensures the admin; returns the login line to repeat."""
    say(_("applying database migrations"))
    if manage("migrate", "--no-input", env=env).returncode != 0:
        raise PreparationFailed(_("manage.py migrate failed; see above"))

    probe = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, text=True, capture_output=True, check=False
    )
    if probe.returncode != 0:
        sys.stderr.write(probe.stderr)
        raise PreparationFailed(_("could not inspect the database; see above"))
    state = json.loads(probe.stdout.strip().splitlines()[-1])
    if state["has_organisation"]:
        say(_("the database already holds organisations: not seeding the demo fleet"))
    elif not state["has_seed_demo"]:
        say(_("seed_demo is not available in this version: starting with an empty database"))
    else:
        say(_("first run: creating the demo fleet (manage.py seed_demo)"))
        if manage("seed_demo", env=env).returncode != 0:
            raise PreparationFailed(_("manage.py seed_demo failed; see above"))

    admin = manage("ensure_admin", "--port", str(port), env=env, capture=True)
    sys.stdout.write(admin.stdout)
    sys.stderr.write(admin.stderr)
    if admin.returncode != 0:
        raise PreparationFailed(_("manage.py ensure_admin failed; see above"))
    login_lines = [line for line in admin.stdout.splitlines() if line.strip()]
    return login_lines[-1] if login_lines else None


class ReadinessAnnouncer:
    """Polls the admin login page and, once it answers, says where to go (output has scrolled by)."""

    def __init__(self, url: str, login_line: str | None, *, interval: float = 1.0):
        self.url = url
        self.login_line = login_line
        self.interval = interval
        self.next_check = time.monotonic() + interval
        self.done = False

    def __call__(self) -> None:
        if self.done or time.monotonic() < self.next_check:
            return
        self.next_check = time.monotonic() + self.interval
        try:
            with urllib.request.urlopen(self.url + "login/", timeout=0.5) as response:
                ready = response.status == 200
        except (urllib.error.URLError, OSError):
            ready = False
        if not ready:
            return
        self.done = True
        say(_("FleetPatch is ready: open %(url)s") % {"url": self.url})
        if self.login_line:
            say(self.login_line)
        say(_("press Ctrl-C to stop the web server and the worker"))


def child_processes(port: int) -> list[Child]:
    python = sys.executable
    return [
        Child("web", [python, "manage.py", "runserver", f"127.0.0.1:{port}"]),
        Child(
            "worker",
            [python, "-m", "celery", "-A", "config", "worker", "-B", "--scheduler", CELERY_SCHEDULER,
             "--max-memory-per-child", "1048576", "--loglevel", "INFO"],
        ),
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=_("Run FleetPatch locally: web server and Celery worker with beat."))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    arguments = parser.parse_args(argv)
    port: int = arguments.port

    env = dict(os.environ)
    env.setdefault("DEBUG", "true")
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    env["PYTHONUNBUFFERED"] = "1"  # children write to pipes; without this their lines come in bursts

    if not port_is_free(port):
        say(_("port %(port)d is already in use; choose another one, e.g. PORT=8001 make run") % {"port": port})
        return 2

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _raise_interrupted)
    try:
        login_line = prepare(port=port, env=env)
    except Interrupted as stopped:
        say(_("received %(signal)s while preparing; stopped") % {"signal": stopped})
        return 130
    except PreparationFailed as failure:
        say(str(failure))
        return 1

    url = f"http://127.0.0.1:{port}/admin/"
    say(_("starting the web server on %(url)s and a Celery worker with beat") % {"url": url})
    supervisor = Supervisor(child_processes(port))
    supervisor.install_signal_handlers()
    supervisor.start(env)
    return supervisor.run(on_tick=ReadinessAnnouncer(url, login_line))


if __name__ == "__main__":
    sys.exit(main())
