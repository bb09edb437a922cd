"""The timeline reads a recent window of check-ins first (partition pruning), and still finds older ones."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from devices.selectors import device_timeline
from tests.factories import CheckInFactory, DeviceFactory

pytestmark = pytest.mark.django_db
LAST = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def check_in_queries(queries: CaptureQueriesContext) -> int:
    return sum('"devices_checkin"' in query["sql"] for query in queries.captured_queries)


def test_a_quiet_device_timeline_still_shows_reports_older_than_the_recent_window() -> None:
    device = DeviceFactory(last_check_in_at=LAST)
    oldest = CheckInFactory(device=device, reported_at=LAST - dt.timedelta(days=400), build_number="A")
    older = CheckInFactory(device=device, reported_at=LAST - dt.timedelta(days=200), build_number="B")
    latest = CheckInFactory(device=device, reported_at=LAST, build_number="B")

    with CaptureQueriesContext(connection) as queries:
        page = device_timeline(device=device)

    assert [e.at for e in page.events if e.kind == "check_in"] == [
        latest.reported_at,
        older.reported_at,
        oldest.reported_at,
    ]
    assert [e.detail for e in page.events if e.kind == "build_change"] == ["A → B"]
    assert check_in_queries(queries) == 2  # the window, then what lies before it


def test_a_device_reporting_daily_fills_its_page_from_the_recent_window_in_one_query() -> None:
    device = DeviceFactory(last_check_in_at=LAST)
    for day in range(80):
        CheckInFactory(device=device, reported_at=LAST - dt.timedelta(days=day))

    with CaptureQueriesContext(connection) as queries:
        page = device_timeline(device=device, before=LAST - dt.timedelta(days=10))

    assert [e.at for e in page.events][0] == LAST - dt.timedelta(days=11)
    assert len(page.events) == 50
    assert check_in_queries(queries) == 1
