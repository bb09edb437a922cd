"""Forms' share of the edge (issue #15): what a person types in the admin follows the API's rules."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError

from common.dates import validate_date_range
from common.text import clean_text


class EdgeFormMixin:
    """Every text a form cleaned goes through :func:`common.text.clean_text` (returns become newlines; a
    control character is an error on its field), and every date must lie in :mod:`common.dates`' range.
    The admin's forms all get it (``fleet.scoping`` adds it to every model form, action forms inherit it)."""

    cleaned_data: dict[str, Any]

    def clean(self) -> dict[str, Any]:
        super().clean()  # type: ignore[misc]
        for name, value in list(self.cleaned_data.items()):
            try:
                if isinstance(value, str):
                    self.cleaned_data[name] = clean_text(value)
                elif isinstance(value, dt.date):  # a datetime is a date too
                    validate_date_range(value)
            except ValidationError as error:
                self.add_error(name, error)  # type: ignore[attr-defined]
        return self.cleaned_data


def edge_form(form_class: type) -> type:
    """``form_class`` with :class:`EdgeFormMixin`'s rules (for ``ModelAdmin.get_form`` and inlines)."""
    if issubclass(form_class, EdgeFormMixin):
        return form_class
    return type(form_class.__name__, (EdgeFormMixin, form_class), {"__module__": form_class.__module__})
