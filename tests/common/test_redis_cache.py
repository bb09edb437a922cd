"""The Redis cache on a frozen Redis: each operation bounded by its socket timeout, then skipped for a while."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest
from django.core.cache.backends.redis import RedisCache

from common.cache import CACHE_UNAVAILABLE
from common.redis_cache import BackingOffRedisCache, CacheSkipped
from tests.conftest import require_service
from tests.integration.processes import PrivateRedis, frozen

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    require_service(shutil.which("redis-server") is not None, "redis-server is not installed")
    with PrivateRedis.running() as server:
        yield server


def cache_on(server: PrivateRedis, backend: type[RedisCache]) -> RedisCache:
    return backend(server.url(1), {"OPTIONS": {"socket_timeout": 0.3, "socket_connect_timeout": 0.3}})


def timed_get(cache: RedisCache) -> tuple[float, Exception | None]:
    started = time.monotonic()
    try:
        cache.get("throttle")
    except CACHE_UNAVAILABLE as error:
        return time.monotonic() - started, error
    return time.monotonic() - started, None


def test_a_frozen_redis_costs_one_socket_timeout_then_operations_fail_at_once(redis_server, settings):
    settings.CACHE_FAILURE_BACKOFF_SECONDS = 1.0
    cache = cache_on(redis_server, BackingOffRedisCache)
    cache.set("throttle", [1, 2, 3])

    with frozen(redis_server.process.pid):
        first = timed_get(cache)
        then = [timed_get(cache) for _ in range(20)]
        time.sleep(1.1)  # the backoff is over: Redis is asked again (and still does not answer)
        again = timed_get(cache)

    assert 0.25 < first[0] < 1.0 and first[1] is not None
    assert all(elapsed < 0.05 and isinstance(error, CacheSkipped) for elapsed, error in then), then
    assert 0.25 < again[0] < 1.0 and not isinstance(again[1], CacheSkipped)
    # Thawed, after the backoff: the cache answers again, with what it held.
    time.sleep(1.1)
    assert cache.get("throttle") == [1, 2, 3]


def test_without_the_backoff_every_operation_on_a_frozen_redis_waits_its_timeout(redis_server):
    """What the backoff saves: Django's own Redis cache waits the socket timeout on every operation."""
    cache = cache_on(redis_server, RedisCache)
    cache.set("throttle", [1])

    with frozen(redis_server.process.pid):
        timings = [timed_get(cache) for _ in range(3)]

    assert all(0.25 < elapsed < 1.0 and error is not None for elapsed, error in timings), timings


def test_an_error_redis_answers_does_not_back_off(redis_server, settings):
    import redis

    settings.CACHE_FAILURE_BACKOFF_SECONDS = 60
    cache = cache_on(redis_server, BackingOffRedisCache)
    redis.Redis.from_url(redis_server.url(1)).set(":1:counter", "not a number")

    with pytest.raises(redis.exceptions.ResponseError):
        cache.incr("counter")

    assert cache.set("other", 1) is None and cache.get("other") == 1
