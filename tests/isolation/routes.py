"""What the URL resolver serves, listed so suites can insist that every route has an expectation.

A new API endpoint, admin page or top-level URL appears here without anyone editing a list; the
isolation suites then fail with "not covered: ..." until somebody says what each persona may get.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver, reverse

API_PREFIX = "api/v1/"
#: Methods an API route may answer besides the ones it declares; OPTIONS and HEAD are DRF's own.
IMPLICIT_METHODS = {"OPTIONS", "HEAD"}
PROBED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: Sample values for the URL parameters of API routes, pointing at nothing.
SAMPLE_KWARGS = {"pk": "987654321", "serial": "NO-SUCH-SERIAL", "imei": "1", "push_id": "no-such-push-id"}


@dataclass(frozen=True)
class Route:
    """One URL pattern: its full route text, name (with namespace) and the view behind it."""

    route: str
    name: str
    callback: Any

    @property
    def view_class(self) -> type | None:
        return getattr(self.callback, "cls", None)

    def methods(self) -> set[str]:
        """The HTTP methods a DRF view answers on this route (besides OPTIONS/HEAD)."""
        actions = getattr(self.callback, "actions", None)
        if actions:
            # DRF adds "head" to a viewset's actions at its first request: ignore it like OPTIONS.
            return {method.upper() for method in actions} - IMPLICIT_METHODS
        view_class = self.view_class
        if view_class is None:
            return set()
        return {
            method.upper()
            for method in view_class.http_method_names
            if hasattr(view_class, method) and method.upper() not in IMPLICIT_METHODS
        }

    def sample_path(self) -> str:
        """The route's URL with parameters that match no row."""
        pattern = self.callback_pattern
        kwargs = {name: SAMPLE_KWARGS[name] for name in pattern.pattern.regex.groupindex}
        return reverse(self.name, kwargs=kwargs)

    @property
    def callback_pattern(self) -> URLPattern:
        return _PATTERNS[self.name]


_PATTERNS: dict[str, URLPattern] = {}


def _walk(patterns: list, prefix: str = "", namespace: str = "") -> Iterator[Route]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        else:
            name = f"{namespace}{pattern.name}" if pattern.name else ""
            if name:
                _PATTERNS.setdefault(name, pattern)
            yield Route(route=prefix + str(pattern.pattern), name=name, callback=pattern.callback)


def all_routes() -> list[Route]:
    return list(_walk(get_resolver().url_patterns))


def api_routes() -> list[Route]:
    """The DRF views under /api/v1/ (the catch-all JSON 404 for unknown /api/ URLs is not one)."""
    return [r for r in all_routes() if r.route.startswith(API_PREFIX) and r.view_class is not None]


def api_operations() -> set[tuple[str, str]]:
    """(url name, HTTP method) of every API operation."""
    return {(route.name, method) for route in api_routes() for method in route.methods()}


def admin_routes() -> list[Route]:
    return [r for r in all_routes() if r.route.startswith("admin/")]
