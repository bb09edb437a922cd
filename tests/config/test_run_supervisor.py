"""scripts/run.py, the `make run` supervisor, driven with small stand-in children instead of the web
server and Celery: output is prefixed, a signal stops everything, one dying child stops the others,
and nothing it started survives it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

DRIVER = textwrap.dedent(
    """
    import importlib.util, json, os, sys
    spec = importlib.util.spec_from_file_location("run", sys.argv[1])
    run = sys.modules["run"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    children = [run.Child(name, argv) for name, argv in json.loads(sys.argv[2])]
    supervisor = run.Supervisor(children, grace=float(sys.argv[3]))
    supervisor.install_signal_handlers()
    supervisor.start(dict(os.environ))
    sys.exit(supervisor.run())
    """
)

# A child that records its pid and the pid of a grandchild it starts in its own process group, so
# the test can check that neither outlives the supervisor.
SLEEPER = textwrap.dedent(
    """
    import os, subprocess, sys, time, signal
    folder, name, ignore_term = sys.argv[1], sys.argv[2], sys.argv[3] == "stubborn"
    if ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(os.path.join(folder, name + ".pids"), "w") as handle:
        handle.write(f"{os.getpid()} {grandchild.pid}")
    print(f"hello from {name}", flush=True)
    time.sleep(120)
    """
)

FAILER = "import sys, time; time.sleep(1); print('about to fail', flush=True); sys.exit(3)"


def is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def wait_until(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


class Driven:
    """A supervisor running in its own process, with the pids its children recorded."""

    def __init__(self, folder: Path, children: list[tuple[str, list[str]]], grace: float = 5.0):
        self.folder = folder
        driver = folder / "driver.py"
        driver.write_text(DRIVER)
        self.log = folder / "supervisor.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(driver), str(ROOT / "scripts" / "run.py"), json.dumps(children), str(grace)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def pids(self, name: str) -> list[int]:
        assert wait_until(lambda: (self.folder / f"{name}.pids").exists()), self.output()
        time.sleep(0.1)
        return [int(pid) for pid in (self.folder / f"{name}.pids").read_text().split()]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout=timeout)

    def kill_everything(self) -> None:
        """Last-resort cleanup so a failing test leaves no process behind."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for pids_file in self.folder.glob("*.pids"):
            for pid in pids_file.read_text().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass


def sleeper(folder: Path, name: str, mode: str = "polite") -> tuple[str, list[str]]:
    return name, [sys.executable, "-c", SLEEPER, str(folder), name, mode]


@pytest.fixture
def drive(tmp_path: Path) -> Iterator:
    started: list[Driven] = []

    def start(children: list[tuple[str, list[str]]], grace: float = 5.0) -> Driven:
        driven = Driven(tmp_path, children, grace)
        started.append(driven)
        return driven

    yield start
    for driven in started:
        driven.kill_everything()


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to see processes")


def test_each_line_of_output_is_prefixed_with_the_name_of_its_child(drive, tmp_path: Path) -> None:
    driven = drive([sleeper(tmp_path, "web"), sleeper(tmp_path, "worker")])
    driven.pids("web"), driven.pids("worker")
    assert wait_until(lambda: "worker | hello from worker" in driven.output()), driven.output()

    assert "web    | hello from web" in driven.output()
    os.kill(driven.process.pid, signal.SIGTERM)
    driven.wait()


def test_sigterm_to_the_supervisor_stops_every_child_and_grandchild_and_exits_zero(drive, tmp_path: Path) -> None:
    driven = drive([sleeper(tmp_path, "web"), sleeper(tmp_path, "worker")])
    pids = driven.pids("web") + driven.pids("worker")

    os.kill(driven.process.pid, signal.SIGTERM)

    assert driven.wait() == 0, driven.output()
    assert wait_until(lambda: not any(is_alive(pid) for pid in pids)), [pid for pid in pids if is_alive(pid)]
    assert "received SIGTERM; stopping" in driven.output()


def test_ctrl_c_to_the_supervisor_stops_every_child(drive, tmp_path: Path) -> None:
    driven = drive([sleeper(tmp_path, "web"), sleeper(tmp_path, "worker")])
    pids = driven.pids("web") + driven.pids("worker")

    os.kill(driven.process.pid, signal.SIGINT)

    assert driven.wait() == 0, driven.output()
    assert wait_until(lambda: not any(is_alive(pid) for pid in pids))


def test_when_one_child_dies_the_others_are_stopped_and_the_exit_code_is_non_zero(drive, tmp_path: Path) -> None:
    driven = drive([sleeper(tmp_path, "web"), ("worker", [sys.executable, "-c", FAILER])])
    pids = driven.pids("web")

    assert driven.wait() != 0, driven.output()
    assert wait_until(lambda: not any(is_alive(pid) for pid in pids))
    assert "worker exited with code 3; stopping the others" in driven.output()
    assert "worker | about to fail" in driven.output()


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(drive, tmp_path: Path) -> None:
    driven = drive([sleeper(tmp_path, "web"), sleeper(tmp_path, "worker", "stubborn")], grace=1.0)
    pids = driven.pids("web") + driven.pids("worker")

    os.kill(driven.process.pid, signal.SIGTERM)

    driven.wait(timeout=15)
    assert wait_until(lambda: not any(is_alive(pid) for pid in pids))
    assert "worker did not stop in time; killing it" in driven.output()


def test_children_do_not_outlive_a_supervisor_killed_with_sigkill(drive, tmp_path: Path) -> None:
    driven = drive([sleeper(tmp_path, "web"), sleeper(tmp_path, "worker")])
    web, worker = driven.pids("web")[0], driven.pids("worker")[0]

    os.kill(driven.process.pid, signal.SIGKILL)
    driven.wait()

    assert wait_until(lambda: not is_alive(web) and not is_alive(worker))


def test_make_run_refuses_a_port_already_in_use_before_touching_the_database(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"PATH": os.environ.get("PATH", ""), "VAR_DIR": str(tmp_path / "var")}

        result = subprocess.run(
            [sys.executable, "scripts/run.py", "--port", str(port)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert result.returncode == 2
    assert f"port {port} is already in use" in result.stdout
    assert not (tmp_path / "var" / "fleetpatch.sqlite3").exists()
