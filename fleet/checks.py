"""System checks of the deployment: what `manage.py check --deploy` must refuse for several processes."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register
from django.utils.translation import gettext_lazy as _

PROCESS_LOCAL_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}


@register(Tags.caches, deploy=True)
def check_shared_cache(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """API throttling, the admin login throttle and the replica pins must be shared by every web process."""
    backend = settings.CACHES["default"]["BACKEND"]
    if backend not in PROCESS_LOCAL_CACHES:
        return []
    return [
        Warning(
            _("CACHE_URL points at a cache inside each process (%(backend)s).") % {"backend": backend},
            hint=_(
                "Throttles would count per process and a client that wrote could read a lagging replica: "
                "set CACHE_URL to Redis (redis://host:6379/1), or leave it unset on a single machine."
            ),
            id="fleet.W001",
        )
    ]
