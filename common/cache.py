"""What a cache outage looks like to the code that must survive one.

The cache (Redis in production) holds throttling counts and replica pins: conveniences, not state. When it is
unreachable, requests go on without them — a Redis outage must not stop check-ins or lock managers out
(README, "Faults survived").
"""

from __future__ import annotations

from redis.exceptions import RedisError

# Django's Redis cache raises redis-py's errors; the file cache raises OSError on a full or unwritable disk.
CACHE_UNAVAILABLE: tuple[type[Exception], ...] = (RedisError, OSError)
