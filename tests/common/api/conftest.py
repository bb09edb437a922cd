"""The API personas (tests/api_personas.py) for these API tests."""

from tests.api_personas import *  # noqa: F403
