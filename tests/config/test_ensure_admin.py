"""`manage.py ensure_admin`: the superuser `make run` prints the login of, on every run."""

from __future__ import annotations

import io
import re
import stat
from pathlib import Path

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LOGIN = re.compile(r"Log in at http://127\.0\.0\.1:(\d+)/admin/ as admin / password: (\S+)$", re.MULTILINE)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def var_dir(settings, tmp_path: Path) -> Path:
    settings.VAR_DIR = tmp_path / "var"
    return settings.VAR_DIR


def ensure_admin(*args: str) -> str:
    out = io.StringIO()
    call_command("ensure_admin", *args, stdout=out)
    return out.getvalue()


def test_first_run_creates_a_superuser_and_prints_its_generated_password(var_dir: Path) -> None:
    output = ensure_admin("--port", "8123")

    port, password = LOGIN.search(output).groups()
    assert port == "8123"
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.is_active
    assert authenticate(username="admin", password=password) == admin
    assert len(password) >= 16


def test_the_password_is_saved_readable_by_its_owner_only(var_dir: Path) -> None:
    password = LOGIN.search(ensure_admin()).group(2)

    saved = var_dir / "admin-password"
    assert saved.read_text().strip() == password
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


def test_later_runs_print_the_same_password_and_create_nothing(var_dir: Path) -> None:
    first = LOGIN.search(ensure_admin()).group(2)

    second = LOGIN.search(ensure_admin()).group(2)

    assert second == first
    assert get_user_model().objects.filter(username="admin").count() == 1
    assert authenticate(username="admin", password=first) is not None


def test_two_fresh_setups_get_different_passwords(settings, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path / "one"
    first = LOGIN.search(ensure_admin()).group(2)
    get_user_model().objects.filter(username="admin").delete()
    settings.VAR_DIR = tmp_path / "two"

    second = LOGIN.search(ensure_admin()).group(2)

    assert first != second


def test_after_a_database_reset_the_saved_password_is_reused(var_dir: Path) -> None:
    password = LOGIN.search(ensure_admin()).group(2)
    get_user_model().objects.filter(username="admin").delete()

    again = LOGIN.search(ensure_admin()).group(2)

    assert again == password
    assert authenticate(username="admin", password=password) is not None


def test_an_admin_created_by_hand_keeps_its_password(var_dir: Path) -> None:
    UserFactory(username="admin", is_superuser=True)

    output = ensure_admin()

    assert LOGIN.search(output) is None
    assert "changepassword admin" in output
    assert authenticate(username="admin", password="correct horse battery staple") is not None
    assert not (var_dir / "admin-password").exists()


def test_a_saved_password_that_no_longer_matches_is_not_printed_as_if_it_worked(var_dir: Path) -> None:
    stale = LOGIN.search(ensure_admin()).group(2)
    admin = get_user_model().objects.get(username="admin")
    admin.set_password("changed in the admin")
    admin.save(update_fields=["password"])

    output = ensure_admin()

    assert stale not in output
    assert "no longer matches" in output
    assert authenticate(username="admin", password="changed in the admin") == admin
