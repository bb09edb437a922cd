from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Channel(models.TextChoices):
    STABLE = "stable", _("Stable")
    BETA = "beta", _("Beta")
