"""Cursor pagination for every list: stable on millions of rows, no COUNT(*), a few indexed orderings."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination

from common.api.filters import EMPTY_VALUE_MESSAGE

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


class FleetPatchCursorPagination(CursorPagination):
    """``?page_size=`` (1 to 500, default 50) and ``?ordering=`` among the view's ``ordering_fields``.

    The cursor encodes a position on the first ordering field; ``id`` always follows it so rows that
    share a value come in a fixed order (DRF's cursor then skips the ties it already returned).
    Only non-null, indexed fields are offered: a cursor over NULLs or an unindexed column would not
    stay cheap on a big table.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = ("id",)
    ordering_param = "ordering"

    def paginate_queryset(self, queryset: Any, request: Request, view: APIView | None = None) -> list | None:
        self._model = queryset.model
        try:
            return super().paginate_queryset(queryset, request, view)
        except (ValueError, TypeError, OverflowError, DjangoValidationError):
            # The cursor is opaque but client-supplied: a tampered position is a bad cursor, not a 500.
            raise NotFound(self.invalid_cursor_message) from None

    def decode_cursor(self, request: Request) -> Any:
        if request.query_params.get(self.cursor_query_param) == "":
            # An empty cursor decodes to the first page: a client that lost its cursor must learn it.
            raise ValidationError({self.cursor_query_param: [EMPTY_VALUE_MESSAGE]})
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None and "\x00" in cursor.position:
            # PostgreSQL cannot compare text with NUL: refuse it before it reaches the database.
            raise NotFound(self.invalid_cursor_message)
        if cursor is not None and cursor.position is not None and self._orders_by_datetime():
            # A tampered position may carry a UTC offset PostgreSQL refuses (beyond ±15:59, which ISO 8601
            # allows): compared in UTC, as the database stores it. OverflowError is a bad cursor too.
            moment = parse_datetime(cursor.position)
            if moment is None:
                raise NotFound(self.invalid_cursor_message)
            if timezone.is_aware(moment):
                cursor = cursor._replace(position=moment.astimezone(dt.UTC).isoformat())
        return cursor

    def _orders_by_datetime(self) -> bool:
        model = getattr(self, "_model", None)
        if model is None:
            return False
        try:
            field = model._meta.get_field(self.ordering[0].lstrip("-"))
        except FieldDoesNotExist:
            return False
        return isinstance(field, models.DateTimeField)

    def get_ordering(self, request: Request, queryset: Any, view: APIView) -> tuple[str, ...]:
        allowed: tuple[str, ...] = getattr(view, "ordering_fields", ("id",))
        requested = request.query_params.get(self.ordering_param)
        if requested is None:
            return ("id",)
        if not requested:
            raise ValidationError({self.ordering_param: [EMPTY_VALUE_MESSAGE]})
        field = requested.lstrip("-")
        if field not in allowed:
            raise ValidationError(
                {
                    self.ordering_param: [
                        gettext("Cannot order by %(field)s. Choose one of: %(allowed)s (prefix - to reverse).")
                        % {"field": requested, "allowed": ", ".join(allowed)}
                    ]
                }
            )
        descending = requested.startswith("-")
        if field == "id":
            return ("-id",) if descending else ("id",)
        return (requested, "-id" if descending else "id")

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError(
                {
                    self.page_size_query_param: [
                        gettext("A page size is a whole number from 1 to %(max)d.") % {"max": self.max_page_size}
                    ]
                }
            )
        return int(raw)

    def get_schema_operation_parameters(self, view: APIView) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        allowed: tuple[str, ...] = getattr(view, "ordering_fields", ("id",))
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size, "default": 50}
        parameters.append(
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": gettext("Sort order (default id); prefix - to reverse. Ties are broken by id."),
                "schema": {"type": "string", "enum": [v for f in allowed for v in (f, f"-{f}")]},
            }
        )
        return parameters
