"""Admin login throttling: after ADMIN_LOGIN_MAX_FAILURES failed logins for one username from one address,
that pair is refused for ADMIN_LOGIN_LOCKOUT_MINUTES, the right password included.

Counted per (username, address) rather than per username alone, so that someone who knows a manager's
username cannot lock them out from elsewhere. Counts live in Django's cache, shared by every web process
when CACHE_URL points at Redis. With the cache unreachable, logins are checked without throttling (and a
warning logged) rather than refused: an outage of Redis must not lock every manager out.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.translation import ngettext

from common.cache import CACHE_UNAVAILABLE

logger = logging.getLogger(__name__)


def client_address(request: HttpRequest | None) -> str:
    """The client's address: a header the proxy sets (ADMIN_LOGIN_CLIENT_IP_HEADER) when configured, else
    the socket's peer. Behind a proxy without that header every client shares the proxy's address."""
    if request is None:
        return "unknown"
    header = settings.ADMIN_LOGIN_CLIENT_IP_HEADER
    if header:
        # The last address of X-Forwarded-For is the one our proxy appended; earlier ones are the client's word.
        forwarded = request.headers.get(header, "").split(",")[-1].strip()
        if forwarded:
            return forwarded
    return request.META.get("REMOTE_ADDR") or "unknown"


def _keys(*, username: str, address: str) -> tuple[str, str]:
    # Hashed: usernames are arbitrary text, and memcached refuses keys with spaces or control characters.
    digest = hashlib.sha256(f"{username.strip().lower()}\x00{address}".encode()).hexdigest()
    return f"admin-login:failures:{digest}", f"admin-login:locked:{digest}"


def login_is_locked(*, username: str, address: str) -> bool:
    return cache.get(_keys(username=username, address=address)[1]) is not None


def login_failure_record(*, username: str, address: str) -> bool:
    """Counts one failure; returns True when this one locks the pair."""
    failures_key, locked_key = _keys(username=username, address=address)
    lockout_seconds = settings.ADMIN_LOGIN_LOCKOUT_MINUTES * 60
    cache.add(failures_key, 0, timeout=lockout_seconds)
    try:
        failures = cache.incr(failures_key)
    except ValueError:  # expired between add() and incr()
        cache.set(failures_key, 1, timeout=lockout_seconds)
        failures = 1
    if failures < settings.ADMIN_LOGIN_MAX_FAILURES:
        return False
    cache.set(locked_key, True, timeout=lockout_seconds)
    cache.delete(failures_key)
    # The username and the address only: never the password that was tried.
    logger.warning(
        "admin login locked for %d minutes: username=%r address=%s", lockout_seconds // 60, username, address
    )
    return True


def login_failures_forget(*, username: str, address: str) -> None:
    cache.delete(_keys(username=username, address=address)[0])


def _unless_cache_down(operation: Callable[..., object], *, username: str, address: str) -> bool:
    """Runs a throttle operation; with the cache unreachable, logs it and answers "not locked"."""
    try:
        return bool(operation(username=username, address=address))
    except CACHE_UNAVAILABLE as error:
        logger.warning("admin login throttle skipped, the cache is unreachable: %s", error)
        return False


class ThrottledAdminLoginForm(AdminAuthenticationForm):
    """The admin's login form, refusing a locked (username, address) pair before checking any password."""

    def clean(self) -> dict:
        username = self.cleaned_data.get("username") or ""
        address = client_address(self.request)
        if username and _unless_cache_down(login_is_locked, username=username, address=address):
            raise self._locked_error()
        try:
            cleaned = super().clean()
        except ValidationError as error:
            if username and getattr(error, "code", None) == "invalid_login":
                if _unless_cache_down(login_failure_record, username=username, address=address):
                    raise self._locked_error() from error
            raise
        _unless_cache_down(login_failures_forget, username=username, address=address)
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
