from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    MANAGER = "manager", _("Fleet manager")
    VIEWER = "viewer", _("Fleet viewer")


class Scope(models.TextChoices):
    READ = "read", _("Read devices and compliance")
    REPORT = "report", _("Report check-ins")
    ENROL = "enrol", _("Enrol devices")
    CATALOGUE = "catalogue", _("Publish models and builds")
