"""Shared fixtures: the personas every permission test speaks of, and service availability."""

from __future__ import annotations

import os

import hypothesis
import pytest
from django.utils import translation
from hypothesis import HealthCheck
from hypothesis.database import DirectoryBasedExampleDatabase

from fleet.choices import Role
from tests.factories import MembershipFactory, OrganisationFactory, UserFactory

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# Property-based tests (hypothesis, schemathesis) are derandomized by default: the same examples on every
# run, so CI never fails by chance and a failure reproduces on a laptop. HYPOTHESIS_PROFILE=explore
# draws new examples on each run and remembers the failing ones under var/ (README "Running the tests").
hypothesis.settings.register_profile(
    "ci", derandomize=True, deadline=None, database=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis.settings.register_profile(
    "explore",
    deadline=None,
    database=DirectoryBasedExampleDatabase(os.path.join(os.path.dirname(__file__), "..", "var", "hypothesis")),
    suppress_health_check=[HealthCheck.too_slow],
)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def require_service(available: bool, reason: str) -> None:
    """Skip with a reason on a laptop without the service; fail in CI, where it must be there."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI must provide it)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _default_language():
    """A request with Accept-Language leaves its language active in the thread (LocaleMiddleware): reset it,
    so a French test never makes the next test's output French."""
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Every persona has a password; PBKDF2's deliberate slowness is most of a test's set-up time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _plain_static_files(settings):
    """Pages render {% static %}; production's manifest storage would need collectstatic first."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def org_a(db):
    return OrganisationFactory(name="Ministère A", slug="org-a")


@pytest.fixture
def org_b(db):
    return OrganisationFactory(name="Company B", slug="org-b")


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_superuser=True)


@pytest.fixture
def manager_a(org_a):
    """A staff user who manages organisation A and nothing else."""
    return MembershipFactory(user=UserFactory(username="manager-a"), organisation=org_a, role=Role.MANAGER).user


@pytest.fixture
def viewer_a(org_a):
    """A staff user who may only look at organisation A."""
    return MembershipFactory(user=UserFactory(username="viewer-a"), organisation=org_a, role=Role.VIEWER).user


@pytest.fixture
def manager_b(org_b):
    """A staff user of organisation B, who must see nothing of A."""
    return MembershipFactory(user=UserFactory(username="manager-b"), organisation=org_b, role=Role.MANAGER).user
