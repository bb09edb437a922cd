"""Admin login throttling: five failed passwords for one username from one address lock that pair for 15 minutes."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
import time_machine
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.test import Client, override_settings

from tests.factories import UserFactory

PASSWORD = "correct horse battery staple"
LOGIN = "/admin/login/"


@pytest.fixture(autouse=True)
def _forget_failures():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def manager(db) -> AbstractBaseUser:
    return UserFactory(username="manager-a")


def attempt(client: Client, password: str, *, username: str = "manager-a", address: str = "203.0.113.7"):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=address)


def logged_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/"


def test_the_right_password_logs_in_after_four_failures_and_resets_the_count(manager: AbstractBaseUser) -> None:
    for _ in range(4):
        assert attempt(Client(), "wrong").status_code == 200

    assert logged_in(attempt(Client(), PASSWORD))
    for _ in range(4):
        attempt(Client(), "wrong")
    assert logged_in(attempt(Client(), PASSWORD))


def test_five_failures_lock_the_login_even_with_the_right_password(manager: AbstractBaseUser) -> None:
    for _ in range(4):
        attempt(Client(), "wrong")

    fifth = attempt(Client(), "wrong")
    with_right_password = attempt(Client(), PASSWORD)

    assert "Too many failed login attempts" in fifth.content.decode()
    assert with_right_password.status_code == 200
    assert "Login is locked for 15 minutes" in with_right_password.content.decode()


def test_the_lock_lifts_after_fifteen_minutes(manager: AbstractBaseUser) -> None:
    with time_machine.travel(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC), tick=False) as clock:
        for _ in range(5):
            attempt(Client(), "wrong")
        clock.shift(dt.timedelta(minutes=14))
        assert not logged_in(attempt(Client(), PASSWORD))
        clock.shift(dt.timedelta(minutes=1, seconds=1))

        assert logged_in(attempt(Client(), PASSWORD))


def test_a_lock_from_one_address_does_not_lock_the_user_out_from_another(manager: AbstractBaseUser) -> None:
    """Someone who knows a manager's username cannot lock them out of the admin from elsewhere."""
    for _ in range(5):
        attempt(Client(), "wrong", address="198.51.100.66")

    assert not logged_in(attempt(Client(), PASSWORD, address="198.51.100.66"))
    assert logged_in(attempt(Client(), PASSWORD, address="203.0.113.7"))


def test_failures_count_per_username_whatever_its_case(manager: AbstractBaseUser) -> None:
    for username in ["manager-a", "Manager-A", "MANAGER-A", "manager-A", " manager-a"]:
        attempt(Client(), "wrong", username=username)

    assert not logged_in(attempt(Client(), PASSWORD))


def test_behind_a_proxy_the_configured_header_names_the_client(manager: AbstractBaseUser, settings) -> None:
    settings.ADMIN_LOGIN_CLIENT_IP_HEADER = "X-Forwarded-For"
    proxy = "10.0.0.2"
    for _ in range(5):
        Client(HTTP_X_FORWARDED_FOR="spoofed, 198.51.100.66").post(
            LOGIN, {"username": "manager-a", "password": "wrong"}, REMOTE_ADDR=proxy
        )

    other_client = Client(HTTP_X_FORWARDED_FOR="203.0.113.7").post(
        LOGIN, {"username": "manager-a", "password": PASSWORD, "next": "/admin/"}, REMOTE_ADDR=proxy
    )

    assert logged_in(other_client)


def test_a_lockout_is_logged_without_the_password(manager: AbstractBaseUser, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        for _ in range(5):
            attempt(Client(), "hunter2-guess")

    assert "admin login locked" in caplog.text
    assert "manager-a" in caplog.text
    assert "hunter2-guess" not in caplog.text


def test_with_the_cache_unreachable_logins_are_checked_without_throttling(manager, caplog) -> None:
    # Redis down (nothing listens on port 1): managers can still log in, and a wrong password is still refused.
    unreachable = override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
        }
    )
    caplog.set_level(logging.WARNING, logger="fleet.login_throttle")

    with unreachable:
        assert not logged_in(attempt(Client(), "wrong password"))
        assert logged_in(attempt(Client(), PASSWORD))
    assert "the cache is unreachable" in caplog.text
