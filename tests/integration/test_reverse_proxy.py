"""deploy/Caddyfile, the proxy docker-compose.yml publishes, run for real (Debian's caddy) in front of the live
server with TRUSTED_PROXY_COUNT=1: a client forging a new X-Forwarded-For on every attempt is still locked out,
because Caddy drops what the client wrote and sends the address it saw."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from django.core.cache import cache

from tests.conftest import require_service
from tests.factories import UserFactory
from tests.integration.processes import ROOT, free_port, port_open, stop_process, wait_until

PASSWORD = "correct horse battery staple"
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture
def proxy(live_server, tmp_path: Path, settings) -> Iterator[str]:
    """Caddy with the production Caddyfile, on a free port, forwarding to the live server."""
    binary = shutil.which("caddy")
    require_service(binary is not None, "caddy is not installed (apt-get install caddy)")
    assert binary is not None
    settings.TRUSTED_PROXY_COUNT = 1
    settings.CSRF_COOKIE_SECURE = settings.SESSION_COOKIE_SECURE = False  # plain HTTP on loopback
    upstream = urlsplit(live_server.url)
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
        "PROXY_SITE_ADDRESS": f"http://127.0.0.1:{port}",
        "PROXY_UPSTREAM_HOST": str(upstream.hostname),
        "PROXY_UPSTREAM_PORT": str(upstream.port),
    }
    log = (tmp_path / "caddy.log").open("w")
    process = subprocess.Popen(
        [binary, "run", "--adapter", "caddyfile", "--config", str(ROOT / "deploy" / "Caddyfile")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: port_open(port) or process.poll() is not None, timeout=20, what="caddy to listen")
        assert process.poll() is None, (tmp_path / "caddy.log").read_text()
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process, timeout=10)
        log.close()


def login(base_url: str, password: str, *, forwarded_for: str | None = None) -> requests.Response:
    """A browser's login: the form (its CSRF token and cookie), then the POST; never follows the redirect."""
    session = requests.Session()
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    form = session.get(f"{base_url}/admin/login/", headers=headers, timeout=10)
    token = TOKEN.search(form.text)
    assert token, form.text[:500]
    return session.post(
        f"{base_url}/admin/login/",
        data={"csrfmiddlewaretoken": token.group(1), "username": "manager-a", "password": password, "next": "/admin/"},
        headers={**headers, "Referer": f"{base_url}/admin/login/"},
        allow_redirects=False,
        timeout=10,
    )


@pytest.mark.django_db(transaction=True)
def test_a_rotating_forged_x_forwarded_for_is_locked_behind_the_real_proxy(proxy: str, live_server) -> None:
    cache.clear()
    UserFactory(username="manager-a")
    for n in range(5):
        assert login(proxy, "wrong", forwarded_for=f"192.0.2.{n}").status_code == 200

    through_proxy = login(proxy, PASSWORD, forwarded_for="192.0.2.250")
    # Straight to the web process (what compose no longer allows), claiming one of the forged addresses: nothing was
    # counted against it, so the lock above is on the address Caddy saw, not on anything the client wrote.
    direct = login(live_server.url, PASSWORD, forwarded_for="192.0.2.1")

    assert through_proxy.status_code == 200
    assert "Login is locked for 15 minutes" in through_proxy.text
    assert direct.status_code == 302 and direct.headers["Location"] == "/admin/"
    cache.clear()
