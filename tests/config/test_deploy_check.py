"""A production environment passes Django's deployment checklist without a single warning."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_deploy_check_passes_without_warnings_in_a_production_environment(tmp_path: Path) -> None:
    # Only what an operator sets: DEBUG unset, a long random key, the public host names.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "fleetpatch.example.org",
        "SITE_URL": "https://fleetpatch.example.org",
        "VAR_DIR": str(tmp_path / "var"),
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output


def test_deploy_check_still_flags_debug_so_the_check_can_fail(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DEBUG": "true",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "VAR_DIR": str(tmp_path / "var"),
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode != 0
    assert "security.W018" in result.stdout + result.stderr


def test_deploy_check_refuses_a_cache_kept_inside_each_process(tmp_path: Path) -> None:
    # Throttles and replica pins in process memory would count per web process (issue #9).
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "fleetpatch.example.org",
        "CACHE_URL": "locmemcache://",
        "VAR_DIR": str(tmp_path / "var"),
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode != 0
    assert "fleet.W001" in result.stdout + result.stderr
