from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DemoConfig(AppConfig):
    """The demo fleet and ``manage.py seed_demo``; no models of its own, it fills the other apps' tables."""

    name = "demo"
    label = "demo"
    # Shown nowhere today (no models, so no admin section); an existing msgid, so French has it already.
    verbose_name = _("Demo data")
