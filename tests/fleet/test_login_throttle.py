"""Admin login throttling: per (username, address) pair, per address (spraying), per username and in total, behind the
reverse proxies TRUSTED_PROXY_COUNT declares (fleet.login_throttle, common.client)."""

from __future__ import annotations

import datetime as dt
import logging
import re

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


def same_page(one: str, other: str) -> bool:
    """Equal but for the CSRF token, new on every page."""
    token = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')
    return token.sub("", one) == token.sub("", other)


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


def test_behind_one_trusted_proxy_the_address_it_appended_names_the_client(manager, settings) -> None:
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.2"
    for _ in range(5):
        Client(HTTP_X_FORWARDED_FOR="spoofed, 198.51.100.66").post(
            LOGIN, {"username": "manager-a", "password": "wrong"}, REMOTE_ADDR=proxy
        )

    other_client = Client(HTTP_X_FORWARDED_FOR="203.0.113.7").post(
        LOGIN, {"username": "manager-a", "password": PASSWORD, "next": "/admin/"}, REMOTE_ADDR=proxy
    )
    locked_client = Client(HTTP_X_FORWARDED_FOR="198.51.100.66").post(
        LOGIN, {"username": "manager-a", "password": PASSWORD, "next": "/admin/"}, REMOTE_ADDR=proxy
    )

    assert logged_in(other_client)
    assert not logged_in(locked_client)


def test_a_rotating_forged_x_forwarded_for_is_still_locked_behind_the_proxy(manager, settings) -> None:
    """The client prepends a new address to every attempt; the proxy appends the real one, which is what counts."""
    settings.TRUSTED_PROXY_COUNT = 1
    for n in range(5):
        Client(HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, 198.51.100.66").post(
            LOGIN, {"username": "manager-a", "password": "wrong"}, REMOTE_ADDR="10.0.0.2"
        )

    sixth = Client(HTTP_X_FORWARDED_FOR="192.0.2.99, 198.51.100.66").post(
        LOGIN, {"username": "manager-a", "password": PASSWORD, "next": "/admin/"}, REMOTE_ADDR="10.0.0.2"
    )

    assert "Login is locked for 15 minutes" in sixth.content.decode()


def test_a_forged_header_sent_straight_past_the_proxy_is_still_stopped_by_the_username_lock(manager, settings) -> None:
    """Should the web process be reachable without the proxy, a new forged address per attempt escapes the pair and
    address counts, not the username's: 20 failures, then the username is refused wherever it comes from."""
    settings.TRUSTED_PROXY_COUNT = 1
    for n in range(20):
        Client(HTTP_X_FORWARDED_FOR=f"192.0.2.{n}").post(
            LOGIN, {"username": "manager-a", "password": "wrong"}, REMOTE_ADDR="198.51.100.66"
        )

    refused = Client(HTTP_X_FORWARDED_FOR="192.0.2.200").post(
        LOGIN, {"username": "manager-a", "password": PASSWORD, "next": "/admin/"}, REMOTE_ADDR="198.51.100.66"
    )

    assert "Login is locked for 15 minutes" in refused.content.decode()


def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(manager, settings) -> None:
    """TRUSTED_PROXY_COUNT=0 (the default): whatever the client writes in the header, its socket address counts."""
    for n in range(5):
        Client(HTTP_X_FORWARDED_FOR=f"192.0.2.{n}").post(
            LOGIN, {"username": "manager-a", "password": "wrong"}, REMOTE_ADDR="198.51.100.66"
        )

    assert not logged_in(attempt(Client(HTTP_X_FORWARDED_FOR="192.0.2.200"), PASSWORD, address="198.51.100.66"))
    assert logged_in(attempt(Client(), PASSWORD, address="203.0.113.7"))


def test_a_header_shorter_than_the_proxy_chain_is_not_believed(manager, settings) -> None:
    """Two proxies declared, one address in the header: the request skipped a proxy, so its socket address counts."""
    settings.TRUSTED_PROXY_COUNT = 2
    for n in range(5):
        Client(HTTP_X_FORWARDED_FOR=f"192.0.2.{n}").post(
            LOGIN, {"username": "manager-a", "password": "wrong"}, REMOTE_ADDR="198.51.100.66"
        )

    assert not logged_in(attempt(Client(HTTP_X_FORWARDED_FOR="192.0.2.77"), PASSWORD, address="198.51.100.66"))


def test_password_spraying_from_one_address_locks_that_address_for_every_username(manager) -> None:
    """120 usernames, one password each, from one address: after 20 failures the address is refused, the manager's
    right password included, while the manager still logs in from elsewhere."""
    answers = [attempt(Client(), "Summer2026!", username=f"user-{n}") for n in range(120)]

    assert all("Too many failed login attempts" not in answer.content.decode() for answer in answers[:19])
    assert all("Login is locked for 15 minutes" in answer.content.decode() for answer in answers[19:])
    assert not logged_in(attempt(Client(), PASSWORD))
    assert logged_in(attempt(Client(), PASSWORD, address="198.51.100.1"))


def test_an_ipv6_client_is_counted_by_its_slash_64(manager) -> None:
    """One machine owns a /64: rotating the interface identifier does not escape the address lock."""
    for n in range(20):
        attempt(Client(), "wrong", username=f"user-{n}", address=f"2001:db8:1:2::{n + 1:x}")

    assert not logged_in(attempt(Client(), PASSWORD, address="2001:db8:1:2:ffff::1"))
    assert logged_in(attempt(Client(), PASSWORD, address="2001:db8:1:3::1"))


def test_failures_on_one_username_from_many_addresses_lock_it_except_where_its_user_signs_in(manager) -> None:
    assert logged_in(attempt(Client(), PASSWORD, address="203.0.113.7"))  # the manager's usual address
    for n in range(20):
        attempt(Client(), "wrong", address=f"192.0.2.{n}")

    assert not logged_in(attempt(Client(), PASSWORD, address="198.51.100.9"))
    assert logged_in(attempt(Client(), PASSWORD, address="203.0.113.7"))


def test_a_distributed_attack_past_the_global_ceiling_locks_every_unknown_address(manager, settings) -> None:
    settings.ADMIN_LOGIN_MAX_FAILURES_GLOBAL = 30
    assert logged_in(attempt(Client(), PASSWORD, address="203.0.113.7"))
    for n in range(30):
        attempt(Client(), "wrong", username=f"user-{n}", address=f"192.0.2.{n}")

    assert not logged_in(attempt(Client(), PASSWORD, address="198.51.100.9"))
    assert logged_in(attempt(Client(), PASSWORD, address="203.0.113.7"))


def test_a_lock_says_the_same_whether_the_username_exists_or_not(manager) -> None:
    """No user enumeration: a locked existing username and a locked unknown one get the same page."""
    for username in ("manager-a", "nobody-here"):
        for _ in range(5):
            attempt(Client(), "wrong", username=username)

    existing = attempt(Client(), PASSWORD, username="manager-a").content.decode()
    unknown = attempt(Client(), PASSWORD, username="nobody-here").content.decode()

    assert "Login is locked for 15 minutes" in existing
    assert same_page(existing.replace("manager-a", "USERNAME"), unknown.replace("nobody-here", "USERNAME"))


def test_the_locked_message_is_translated(manager) -> None:
    for _ in range(5):
        attempt(Client(), "wrong")

    page = (
        Client()
        .post(
            LOGIN, {"username": "manager-a", "password": PASSWORD}, REMOTE_ADDR="203.0.113.7", HTTP_ACCEPT_LANGUAGE="fr"
        )
        .content.decode()
    )

    assert "Trop de tentatives de connexion échouées" in page


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
