"""The models and the committed migrations agree: no model change waits for a migration."""

from __future__ import annotations

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_model_change_is_missing_a_migration(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        call_command("makemigrations", "--check", "--dry-run", verbosity=1)
    except SystemExit:
        pytest.fail(f"makemigrations --check found changes without a migration:\n{capsys.readouterr().out}")

    assert "No changes detected" in capsys.readouterr().out
