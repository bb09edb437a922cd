"""The soak's traffic (step 3 and 4): the managers' admin logins, then a paced, weighted mix of requests.

Every request is recorded as a ``Sample`` (kind, when, how long, status, error); the report and the verdicts
read them afterwards.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

from bench.soaking.stack import ProxiedHttp

BULK_SIZE = 100

# Request kinds and their share of the mix: mostly what MDMs do (check-ins, reads), some people in the admin.
WEIGHTS = {
    "checkin_single": 30,
    "checkin_bulk": 6,
    "api_device_list": 14,
    "api_device_detail": 14,
    "api_compliance_summary": 8,
    "admin_dashboard": 6,
    "admin_device_list": 8,
    "admin_device_timeline": 8,
    "metrics": 2,
}


def admin_login(http_: ProxiedHttp, username: str, password: str) -> str:
    """Logs in through the admin's own form (CSRF token, Referer as a browser sends it over HTTPS) and
    returns the Cookie header of the session. Secure cookies are handled here, not by a cookie jar that would
    refuse them over the loopback's plain HTTP."""
    status, headers, body = http_.request("GET", "/admin/login/?next=/admin/")
    if status != 200:
        raise RuntimeError(f"GET /admin/login/ answered {status}")
    cookies = SimpleCookie()
    for value in headers.get("set-cookie", []):
        cookies.load(value)
    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body)
    if match is None or "csrftoken" not in cookies:
        raise RuntimeError("the admin login page carries no CSRF token")
    form = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": match.group(1).decode(),
            "username": username,
            "password": password,
            "next": "/admin/",
        }
    ).encode()
    status, headers, body = http_.request(
        "POST",
        "/admin/login/?next=/admin/",
        body=form,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={cookies['csrftoken'].value}",
            "Referer": f"{http_.origin}/admin/login/",
            "Origin": http_.origin,
        },
    )
    for value in headers.get("set-cookie", []):
        cookies.load(value)
    if status != 302 or "sessionid" not in cookies:
        raise RuntimeError(f"the admin login of {username} failed: {status} {body[:200]!r}")
    return f"sessionid={cookies['sessionid'].value}; csrftoken={cookies['csrftoken'].value}"


@dataclass
class Organisation:
    """What the load needs of one organisation: its token, its manager's session, some devices."""

    pk: int
    token: str
    manager: str = ""
    session_cookie: str = ""
    devices: list[tuple[int, str, int, str, str, str]] = field(default_factory=list)  # pk, serial, model, ...


@dataclass
class Sample:
    kind: str
    at: float
    seconds: float
    status: int
    error: str | None


class Load:
    """The paced mix of requests: every thread keeps its share of --rate, and records every request."""

    def __init__(
        self, http_: ProxiedHttp, organisations: list[Organisation], newest: dict[int, tuple[str, str, str]], *,
        metrics_token: str, seed: int,
    ) -> None:  # fmt: skip
        self.http = http_
        self.organisations = organisations
        self.newest = newest
        self.metrics_token = metrics_token
        self.seed = seed
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self.started = time.monotonic()

    # One method per kind; each returns (status, error or None).
    def _api(self, org: Organisation, method: str, path: str, payload: Any = None) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {org.token}", "Accept": "application/json"}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        status, _, data = self.http.request(method, path, body=body, headers=headers)
        return status, data

    def _report(self, rng: random.Random, device: tuple[int, str, int, str, str, str]) -> dict:
        _pk, serial, model_id, build, android, patch = device
        # Half the reports install the model's newest build: statuses move, so sweeps and digests have work.
        if rng.random() < 0.5 and model_id in self.newest:
            build, android, patch = self.newest[model_id]
        return {
            "serial": serial,
            "reported_at": _now_iso(),
            "build_number": build,
            "android_version": android,
            "security_patch_level": patch or None,
            "battery_level": rng.randint(5, 100),
            "battery_health": rng.randint(60, 100),
        }

    def checkin_single(self, rng: random.Random, org: Organisation) -> tuple[int, str | None]:
        status, _ = self._api(org, "POST", "/api/v1/checkins/", self._report(rng, rng.choice(org.devices)))
        return status, None if status in (200, 201) else f"HTTP {status}"

    def checkin_bulk(self, rng: random.Random, org: Organisation) -> tuple[int, str | None]:
        devices = rng.sample(org.devices, min(BULK_SIZE, len(org.devices)))
        status, data = self._api(org, "POST", "/api/v1/checkins/", [self._report(rng, d) for d in devices])
        if status != 200:
            return status, f"HTTP {status}"
        if json.loads(data).get("errors"):
            return status, "check-in item refused"
        return status, None

    def api_device_list(self, rng: random.Random, org: Organisation) -> tuple[int, str | None]:
        query = rng.choice(["", "?compliance_status=behind", "?compliance_status=critical&battery_status=due"])
        status, _ = self._api(org, "GET", f"/api/v1/devices/{query}")
        return status, None if status == 200 else f"HTTP {status}"

    def api_device_detail(self, rng: random.Random, org: Organisation) -> tuple[int, str | None]:
        status, _ = self._api(org, "GET", f"/api/v1/devices/{rng.choice(org.devices)[0]}/")
        return status, None if status == 200 else f"HTTP {status}"

    def api_compliance_summary(self, rng: random.Random, org: Organisation) -> tuple[int, str | None]:
        status, _ = self._api(org, "GET", "/api/v1/compliance/summary/")
        return status, None if status == 200 else f"HTTP {status}"

    def _admin(self, org: Organisation, path: str) -> tuple[int, str | None]:
        status, headers, _ = self.http.request("GET", path, headers={"Cookie": org.session_cookie})
        if status == 302:
            return status, f"HTTP 302 to {headers.get('location', ['?'])[0]} (session lost?)"
        return status, None if status == 200 else f"HTTP {status}"

    def admin_dashboard(self, rng: random.Random, org: Organisation) -> tuple[int, str | None]:
        return self._admin(org, f"/admin/?organisation={org.pk}")

    def admin_device_list(self, rng: random.Random, org: Organisation) -> tuple[int, str | None]:
        query = rng.choice(["", "?compliance_status__exact=behind", f"?q={rng.choice(org.devices)[1]}"])
        return self._admin(org, f"/admin/devices/device/{query}")

    def admin_device_timeline(self, rng: random.Random, org: Organisation) -> tuple[int, str | None]:
        return self._admin(org, f"/admin/devices/device/{rng.choice(org.devices)[0]}/timeline/")

    def metrics(self, rng: random.Random, org: Organisation) -> tuple[int, str | None]:
        status, _, _ = self.http.request("GET", "/metrics", headers={"Authorization": f"Bearer {self.metrics_token}"})
        return status, None if status == 200 else f"HTTP {status}"

    def one(self, kind: str, rng: random.Random) -> None:
        org = rng.choice(self.organisations)
        started = time.monotonic()
        try:
            status, error = getattr(self, kind)(rng, org)
        except TimeoutError:
            status, error = 0, "timeout"
        except (OSError, http.client.HTTPException) as exc:
            status, error = 0, f"connection error ({type(exc).__name__})"
        elapsed = time.monotonic() - started
        if status >= 500:
            error = f"HTTP {status}"
        with self._lock:
            self.samples.append(Sample(kind, started - self.started, elapsed, status, error))

    def prime(self, clients: int) -> None:
        """Every kind once per client thread, concurrently, so each web worker has loaded what it serves."""
        threads = [
            threading.Thread(target=lambda i=i: [self.one(kind, random.Random(self.seed - i)) for kind in WEIGHTS])
            for i in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def run(self, *, clients: int, rate: float, seconds: float) -> None:
        self.samples = []
        self.started = time.monotonic()
        deadline = self.started + seconds
        kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
        interval = clients / rate

        def loop(index: int) -> None:
            rng = random.Random(self.seed + index)
            next_at = time.monotonic() + rng.random() * interval  # spread the threads' first requests
            while True:
                now = time.monotonic()
                if next_at > now:
                    time.sleep(next_at - now)
                if time.monotonic() >= deadline:
                    return
                self.one(rng.choices(kinds, weights)[0], rng)
                # Paced, not flooding: a slow server lowers the rate achieved, and the summary says so.
                next_at = max(next_at + interval, time.monotonic() - interval)

        threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _now_iso() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
