"""Django's Redis cache, which stops asking a Redis that just failed to answer, for a few seconds.

Every cache operation is bounded by ``CACHE_SOCKET_TIMEOUT`` (config/settings.py); callers survive the error
(``common.cache.CACHE_UNAVAILABLE``: throttles skipped, replica pins ignored). But a frozen Redis would still
cost every request that timeout, cutting a web worker's throughput to a few requests a second. After a
connection error or a timeout, this process fails its cache operations at once for
``CACHE_FAILURE_BACKOFF_SECONDS``, then tries Redis again: one slow request per process per period, not one per
request. An error Redis itself answers (a wrong type, out of memory) proves it is up and opens nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError)

# Servers (a cache's LOCATION) -> monotonic time until which they are not asked; shared by the process's threads.
_skip_until: dict[tuple[str, ...], float] = {}
_lock = threading.Lock()


class CacheSkipped(RedisConnectionError):
    """Not sent: this Redis failed to answer a moment ago (a ``RedisError``, as the callers expect)."""


class _Tripping:
    """A redis-py client whose commands, on a connection error or a timeout, stop the cache's use for a while."""

    def __init__(self, client: Any, trip: Callable[[Exception], None]) -> None:
        self._client = client
        self._trip = trip

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def command(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            except _UNREACHABLE as error:
                self._trip(error)
                raise

        return command


class _BackingOffClient(RedisCacheClient):
    def get_client(self, key: str | None = None, *, write: bool = False) -> Any:
        servers = tuple(self._servers)
        skipped_until = _skip_until.get(servers, 0.0)
        if time.monotonic() < skipped_until:
            raise CacheSkipped(
                f"the cache failed to answer; not asked again for {skipped_until - time.monotonic():.1f} s"
            )
        return _Tripping(super().get_client(key, write=write), lambda error: _trip(servers, error))


def _trip(servers: tuple[str, ...], error: Exception) -> None:
    backoff = getattr(settings, "CACHE_FAILURE_BACKOFF_SECONDS", 5.0)
    with _lock:
        _skip_until[servers] = time.monotonic() + backoff
    logger.warning("the cache did not answer (%s): not asked again for %s s", error, backoff)


class BackingOffRedisCache(RedisCache):
    """``django.core.cache.backends.redis.RedisCache`` backing off ``CACHE_FAILURE_BACKOFF_SECONDS`` after a
    connection error or a timeout (``CACHE_URL=redis://...`` selects it)."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _BackingOffClient
