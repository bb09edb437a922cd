"""TRUSTED_PROXY_COUNT and the login throttle's limits are checked at startup; the old header setting is refused."""

from __future__ import annotations

from tests.config.test_settings import PRODUCTION_KEY, run_python

READ = "from config import settings as s; print(s.TRUSTED_PROXY_COUNT, s.ADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS)"


def test_by_default_no_proxy_is_trusted() -> None:
    result = run_python(READ, SECRET_KEY=PRODUCTION_KEY)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "20"]


def test_the_old_client_ip_header_setting_stops_the_start_and_says_what_replaces_it() -> None:
    result = run_python(READ, SECRET_KEY=PRODUCTION_KEY, ADMIN_LOGIN_CLIENT_IP_HEADER="X-Forwarded-For")

    assert result.returncode != 0
    assert "ADMIN_LOGIN_CLIENT_IP_HEADER is no longer supported" in result.stderr
    assert "TRUSTED_PROXY_COUNT" in result.stderr


def test_a_negative_proxy_count_or_a_zero_limit_is_refused() -> None:
    negative = run_python(READ, SECRET_KEY=PRODUCTION_KEY, TRUSTED_PROXY_COUNT="-1")
    zero = run_python(READ, SECRET_KEY=PRODUCTION_KEY, ADMIN_LOGIN_MAX_FAILURES_GLOBAL="0")

    assert negative.returncode != 0 and "TRUSTED_PROXY_COUNT must be 0 or a number of proxies" in negative.stderr
    assert zero.returncode != 0 and "ADMIN_LOGIN_MAX_FAILURES_GLOBAL must be a positive number" in zero.stderr
