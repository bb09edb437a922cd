"""``manage.py ensure_admin``: the local superuser that ``make run`` prints the credentials of.

1. Read the password saved in ``var/admin-password`` (if any).
2. If no user ``admin`` exists, create it as a superuser with the saved password, or with a new
   random one that is saved first (mode 0600), so a failed creation never loses it.
3. Print how to log in. An existing ``admin`` is never given a new password: if the saved one is
   missing or no longer matches, say so and how to set one, rather than overwrite a password
   somebody chose.

It is a development convenience for the embedded defaults; production creates its users with
``createsuperuser``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

USERNAME = "admin"


def password_file() -> Path:
    return Path(settings.VAR_DIR) / "admin-password"


def read_saved_password(path: Path) -> str | None:
    try:
        password = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return password or None


def save_password(path: Path, password: str) -> None:
    """Writes the password readable by its owner only, even if the file already existed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(password + "\n")
    os.chmod(path, 0o600)


class Command(BaseCommand):
    help = gettext(
        "Create the superuser 'admin' if it is missing, with a generated password saved in "
        "var/admin-password (mode 0600), and print how to log in."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--port",
            type=int,
            default=int(os.environ.get("PORT") or 8000),
            help=_("Port of the local web server, for the printed URL (default: $PORT or 8000)."),
        )

    def handle(self, *args: object, port: int, **options: object) -> None:
        url = f"http://127.0.0.1:{port}/admin/"
        path = password_file()
        saved = read_saved_password(path)
        user_model = get_user_model()
        user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: USERNAME}).first()
        context = {"url": url, "username": USERNAME, "path": path}

        if user is None:
            password = saved or secrets.token_urlsafe(12)
            if saved is None:
                save_password(path, password)
            user_model._default_manager.create_superuser(
                **{user_model.USERNAME_FIELD: USERNAME}, email="", password=password
            )
            self.stdout.write(
                gettext("Created the superuser %(username)s; its password is saved in %(path)s.") % context
            )
        elif saved is None:
            self.stdout.write(
                gettext(
                    "Log in at %(url)s as %(username)s / password: the one you chose (it is not saved in "
                    "%(path)s; set a new one with: python manage.py changepassword %(username)s)"
                )
                % context
            )
            return
        elif not user.check_password(saved):
            self.stdout.write(
                gettext(
                    "Log in at %(url)s as %(username)s / password: the password saved in %(path)s no longer "
                    "matches (it was changed since); set a new one with: python manage.py changepassword "
                    "%(username)s"
                )
                % context
            )
            return
        else:
            password = saved

        self.stdout.write(
            gettext("Log in at %(url)s as %(username)s / password: %(password)s") % {**context, "password": password}
        )
