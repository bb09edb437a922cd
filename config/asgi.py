from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_asgi_application()

# Web requests get the web's statement timeout, as under WSGI (common.db). ASGI runs sync views in threads,
# where the request deadline cannot arm (common.deadline): production serves WSGI (gunicorn's sync workers).
from common.db import use_database_role  # noqa: E402 - needs the settings get_asgi_application loaded

use_database_role("web")
