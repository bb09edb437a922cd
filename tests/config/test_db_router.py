"""The replica router's rules, in one process (tests/integration/test_scale_out.py runs them on two databases)."""

from __future__ import annotations

from contextvars import ContextVar

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.test import RequestFactory, override_settings

from common import db_router
from common.db_router import (
    PRIMARY,
    REPLICA,
    PrimaryReplicaRouter,
    ReplicaPinningMiddleware,
    replica_reads,
    stream_from_replica,
)
from devices.models import CheckIn, Device

router = PrimaryReplicaRouter()


@pytest.fixture
def with_replica(monkeypatch):
    monkeypatch.setitem(django_settings.DATABASES, REPLICA, dict(django_settings.DATABASES[PRIMARY]))
    # Outside a request nothing resets the router's state: earlier tests' writes are remembered in this thread.
    monkeypatch.setattr(db_router, "_written", ContextVar("replica_written_tables", default=frozenset()))
    monkeypatch.setattr(db_router, "_replica_allowed", ContextVar("replica_allowed", default=False))
    monkeypatch.setattr(db_router, "_pinned", ContextVar("replica_pinned", default=False))
    cache.clear()
    yield
    cache.clear()


def serve(request: HttpRequest, view) -> HttpResponse:
    return ReplicaPinningMiddleware(view)(request)


def test_reads_go_to_the_primary_unless_a_view_opts_in(with_replica):
    assert router.db_for_read(Device) == PRIMARY
    with replica_reads():
        assert router.db_for_read(Device) == REPLICA
    assert router.db_for_read(Device) == PRIMARY


def test_without_a_replica_configured_everything_reads_the_primary():
    assert REPLICA not in django_settings.DATABASES
    with replica_reads():
        assert router.db_for_read(Device) == PRIMARY


def test_a_request_that_wrote_a_table_reads_that_table_from_the_primary(with_replica):
    seen = {}

    def view(request: HttpRequest) -> HttpResponse:
        with replica_reads():
            router.db_for_write(Device)
            seen["device"] = router.db_for_read(Device)
            seen["check_in"] = router.db_for_read(CheckIn)
        return HttpResponse()

    serve(RequestFactory().post("/api/v1/devices/", HTTP_AUTHORIZATION="Bearer a"), view)

    assert seen == {"device": PRIMARY, "check_in": REPLICA}


def test_a_client_that_wrote_is_pinned_to_the_primary_for_its_next_requests(with_replica):
    seen = []

    def write(request: HttpRequest) -> HttpResponse:
        router.db_for_write(Device)
        return HttpResponse(status=201)

    def read(request: HttpRequest) -> HttpResponse:
        with replica_reads():
            seen.append(router.db_for_read(Device))
        return HttpResponse()

    factory = RequestFactory()
    serve(factory.get("/api/v1/devices/", HTTP_AUTHORIZATION="Bearer writer"), read)
    serve(factory.post("/api/v1/devices/", HTTP_AUTHORIZATION="Bearer writer"), write)
    serve(factory.get("/api/v1/devices/", HTTP_AUTHORIZATION="Bearer writer"), read)
    serve(factory.get("/api/v1/devices/", HTTP_AUTHORIZATION="Bearer someone-else"), read)

    assert seen == [REPLICA, PRIMARY, REPLICA]
    assert not any("writer" in str(key) for key in getattr(cache, "_cache", {})), "the token is hashed in the key"


def test_a_get_that_wrote_housekeeping_rows_does_not_pin_its_client(with_replica):
    seen = []

    def read_and_touch(request: HttpRequest) -> HttpResponse:
        router.db_for_write(Device)  # e.g. an API client's last use, a session
        with replica_reads():
            seen.append(router.db_for_read(CheckIn))
        return HttpResponse()

    factory = RequestFactory()
    serve(factory.get("/", HTTP_AUTHORIZATION="Bearer reader"), read_and_touch)
    serve(factory.get("/", HTTP_AUTHORIZATION="Bearer reader"), read_and_touch)

    assert seen == [REPLICA, REPLICA]


def test_a_streamed_response_keeps_the_replica_and_the_pin_after_the_view_returned(with_replica):
    def rows():
        yield router.db_for_read(Device)

    def view(request: HttpRequest) -> HttpResponse:
        return StreamingHttpResponse(stream_from_replica(rows()))

    pinned_key_request = RequestFactory().post("/", HTTP_AUTHORIZATION="Bearer pinned")
    serve(pinned_key_request, lambda request: (router.db_for_write(Device), HttpResponse())[1])

    assert b"".join(serve(RequestFactory().get("/", HTTP_AUTHORIZATION="Bearer fresh"), view)) == REPLICA.encode()
    assert b"".join(serve(RequestFactory().get("/", HTTP_AUTHORIZATION="Bearer pinned"), view)) == PRIMARY.encode()


def test_migrations_run_on_the_primary_only():
    assert router.allow_migrate(PRIMARY, "devices") is True
    assert router.allow_migrate(REPLICA, "devices") is False


def test_with_the_cache_unreachable_every_client_reads_the_primary_and_nothing_fails(with_replica):
    unreachable = override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
        }
    )
    seen = []

    def view(request: HttpRequest) -> HttpResponse:
        router.db_for_write(Device)
        with replica_reads():
            seen.append(router.db_for_read(CheckIn))
        return HttpResponse(status=201)

    with unreachable:
        response = serve(RequestFactory().post("/", HTTP_AUTHORIZATION="Bearer a"), view)

    assert response.status_code == 201
    assert seen == [PRIMARY]
