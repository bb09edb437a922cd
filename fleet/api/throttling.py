"""Per-client throttling: each ApiClient has its own budget (``API_THROTTLE_RATE``), whatever its IP."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rest_framework.throttling import SimpleRateThrottle

from common.cache import CACHE_UNAVAILABLE
from fleet.models import ApiClient

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)


class ApiClientRateThrottle(SimpleRateThrottle):
    scope = "api_client"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if not isinstance(request.auth, ApiClient):
            return None  # unauthenticated requests are refused before they cost anything
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}

    def allow_request(self, request: Request, view: APIView) -> bool:
        """The budget is counted in the cache (Redis in production); with the cache down, requests go through
        unthrottled rather than failing: a Redis outage must not stop check-ins (README, "Faults")."""
        try:
            return super().allow_request(request, view)
        except CACHE_UNAVAILABLE as error:
            logger.warning("API throttle skipped, the cache is unreachable: %s", error)
            return True
