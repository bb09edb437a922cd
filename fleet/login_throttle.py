"""Admin login throttling: failed logins are counted four ways over a window of ADMIN_LOGIN_LOCKOUT_MINUTES, and
each count that reaches its limit locks something for ADMIN_LOGIN_LOCKOUT_MINUTES, the right password included.

1. one username from one address (ADMIN_LOGIN_MAX_FAILURES, 5): that pair is locked (guessing one password);
2. one address, whatever the usernames (..._PER_ADDRESS, 20): the address is locked (password spraying);
3. one username, from any address (..._PER_USERNAME, 20): the username is locked (a botnet on one account);
4. everything (..._GLOBAL, 200): every login is locked (a botnet spraying many accounts).

Locks 2 to 4 spare an address the user signed in from in the last ADMIN_LOGIN_KNOWN_ADDRESS_DAYS ("known" to
that user, as identity providers' smart lockout does): an attacker elsewhere cannot lock a manager out of the
admin, and one who shares the manager's address is still held by lock 1. The address is the client's as the
trusted proxies report it (common.client, TRUSTED_PROXY_COUNT), an IPv6 client's /64 as a whole.

Every lock answers the same message, checked before any password: it says nothing about whether the username
exists or the password was right. Counts live in Django's cache, shared by every web process when CACHE_URL
points at Redis. With the cache unreachable, logins are checked without throttling (and a warning logged)
rather than refused: an outage of Redis must not lock every manager out.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.utils.translation import ngettext

from common.cache import CACHE_UNAVAILABLE
from common.client import client_address, client_network

logger = logging.getLogger(__name__)

PREFIX = "admin-login"


def _digest(*parts: str) -> str:
    # Hashed: usernames are arbitrary text, and memcached refuses keys with spaces or control characters.
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _username(username: str) -> str:
    return username.strip().lower()


def _scopes(*, username: str, network: str) -> dict[str, tuple[str, int]]:
    """Each count: its key's suffix and its limit, most specific first."""
    return {
        "pair": (_digest(_username(username), network), settings.ADMIN_LOGIN_MAX_FAILURES),
        "address": (_digest("address", network), settings.ADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS),
        "username": (_digest("username", _username(username)), settings.ADMIN_LOGIN_MAX_FAILURES_PER_USERNAME),
        "global": ("all", settings.ADMIN_LOGIN_MAX_FAILURES_GLOBAL),
    }


def _window_seconds() -> int:
    return settings.ADMIN_LOGIN_LOCKOUT_MINUTES * 60


def _counter_key(scope: str, suffix: str) -> str:
    # A fixed window per key: counts of the previous window are simply never read again, whatever the cache
    # backend does to a key's expiry on incr() (the file cache resets it to its default).
    window = int(time.time()) // _window_seconds()
    return f"{PREFIX}:failures:{scope}:{suffix}:{window}"


def _locked_key(scope: str, suffix: str) -> str:
    return f"{PREFIX}:locked:{scope}:{suffix}"


def _known_key(*, username: str, network: str) -> str:
    return f"{PREFIX}:known:{_digest(_username(username), network)}"


def login_lock(*, username: str, network: str) -> str | None:
    """The lock refusing this username from this network ("pair", "address", "username", "global"), or None."""
    scopes = _scopes(username=username, network=network)
    known = cache.get(_known_key(username=username, network=network)) is not None
    applying = ["pair"] if known else list(scopes)
    locked = cache.get_many([_locked_key(scope, scopes[scope][0]) for scope in applying])
    for scope in applying:
        if _locked_key(scope, scopes[scope][0]) in locked:
            return scope
    return None


def login_failure_record(*, username: str, network: str) -> bool:
    """Counts one failure in every scope, locks those at their limit; True when a lock now refuses this pair."""
    window = _window_seconds()
    locked_now = False
    for scope, (suffix, limit) in _scopes(username=username, network=network).items():
        key = _counter_key(scope, suffix)
        cache.add(key, 0, timeout=window)
        try:
            failures = cache.incr(key)
        except ValueError:  # expired between add() and incr()
            cache.set(key, 1, timeout=window)
            failures = 1
        if failures != limit:  # exactly at the limit: lock once, log once
            continue
        cache.set(_locked_key(scope, suffix), True, timeout=window)
        locked_now = True
        # The username and the address only: never the password that was tried.
        logger.warning(
            "admin login locked for %d minutes (%s): %d failures, username=%r address=%s",
            window // 60,
            scope,
            failures,
            username if scope in {"pair", "username"} else "*",
            network if scope in {"pair", "address"} else "*",
        )
    return locked_now and login_lock(username=username, network=network) is not None


def login_success_record(*, username: str, network: str) -> None:
    """Forgets this pair's failures and remembers the network as one this user signs in from."""
    suffix = _scopes(username=username, network=network)["pair"][0]
    cache.delete(_counter_key("pair", suffix))
    cache.set(
        _known_key(username=username, network=network), True, timeout=settings.ADMIN_LOGIN_KNOWN_ADDRESS_DAYS * 86400
    )


def _unless_cache_down(operation: Callable[..., object], **kwargs: str) -> object:
    """Runs a throttle operation; with the cache unreachable, logs it and answers "not locked"."""
    try:
        return operation(**kwargs)
    except CACHE_UNAVAILABLE as error:
        logger.warning("admin login throttle skipped, the cache is unreachable: %s", error)
        return None


class ThrottledAdminLoginForm(AdminAuthenticationForm):
    """The admin's login form, refusing a locked username, address or pair before checking any password."""

    def clean(self) -> dict:
        username = self.cleaned_data.get("username") or ""
        network = client_network(client_address(self.request))
        if username and _unless_cache_down(login_lock, username=username, network=network):
            raise self._locked_error()
        try:
            cleaned = super().clean()
        except ValidationError as error:
            if username and getattr(error, "code", None) == "invalid_login":
                if _unless_cache_down(login_failure_record, username=username, network=network):
                    raise self._locked_error() from error
            raise
        _unless_cache_down(login_success_record, username=username, network=network)
        return cleaned

    def _locked_error(self) -> ValidationError:
        minutes = settings.ADMIN_LOGIN_LOCKOUT_MINUTES
        return ValidationError(
            ngettext(
                "Too many failed login attempts. Login is locked for %(minutes)d minute; try again later.",
                "Too many failed login attempts. Login is locked for %(minutes)d minutes; try again later.",
                minutes,
            ),
            code="locked",
            params={"minutes": minutes},
        )
