#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 - loads the settings now, to report a bad configuration clearly
    except ImproperlyConfigured as error:
        # Django would carry on without settings and fail later with "Apps aren't loaded yet".
        sys.exit(f"FleetPatch is not configured: {error}")

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
