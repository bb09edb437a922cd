"""``create_api_client`` prints the token once; the token works; mistakes exit non-zero with a reason."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from fleet.models import ApiClient, hash_token


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("create_api_client", *args, stdout=out)
    return out.getvalue()


def test_it_creates_a_client_and_prints_a_working_token_once(org_a, http):
    output = run("--organisation", "org-a", "--name", "Intune", "--scopes", "report,enrol")
    token = output.strip().splitlines()[-1]
    client = ApiClient.objects.get(name="Intune")
    assert client.organisation == org_a
    assert client.scopes == ["report", "enrol"]
    assert client.expires_at is None
    assert client.token_hash == hash_token(token)
    assert token not in (client.token_hash, client.token_prefix)
    assert output.count(token) == 1
    # report+enrol without read: it may enrol, not list.
    assert http(token).post("/api/v1/devices/", {"serial": "S-1"}, format="json").status_code == 201
    assert http(token).get("/api/v1/devices/").status_code == 403


def test_expiry_in_days(org_a):
    run("--organisation", "org-a", "--name", "Temp", "--scopes", "read", "--expires-in-days", "30")
    client = ApiClient.objects.get(name="Temp")
    assert 29 <= (client.expires_at - client.created_at).days <= 30


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--organisation", "nope", "--name", "X"], "nope"),
        (["--organisation", "org-a", "--name", "X", "--scopes", "read,admin"], "admin"),
        (["--organisation", "org-a", "--name", "X", "--scopes", ","], "scope"),
        (["--organisation", "org-a", "--name", "X", "--expires-in-days", "0"], "expires"),
    ],
)
def test_mistakes_exit_non_zero_with_a_clear_reason(org_a, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert not ApiClient.objects.exists()


def test_a_duplicate_name_is_refused(org_a):
    run("--organisation", "org-a", "--name", "Dup")
    with pytest.raises(CommandError, match="already"):
        run("--organisation", "org-a", "--name", "Dup")


def test_pubsub_push_prints_the_push_endpoint_with_its_secret_once(org_a, settings):
    settings.SITE_URL = "https://fleetpatch.example.gouv.fr"
    output = run(
        "--organisation",
        "org-a",
        "--name",
        "AMAPI",
        "--scopes",
        "report,enrol",
        "--pubsub-push",
        "--push-service-account",
        "amapi-push@project.iam.gserviceaccount.com",
    )
    client = ApiClient.objects.get(name="AMAPI")
    base = f"https://fleetpatch.example.gouv.fr/api/v1/ingest/amapi/push/{client.push_id}/"
    url = next(line for line in output.splitlines() if line.startswith(base + "?token="))
    secret = url.split("?token=", 1)[1]
    assert client.push_secret_hash == hash_token(secret)
    assert output.count(secret) == 1
    # The OIDC variant: the service account, and the audience its tokens must name (the URL, by default).
    assert "amapi-push@project.iam.gserviceaccount.com" in output
    assert f"(audience {base})" in output


def test_without_pubsub_push_no_push_endpoint_is_made(org_a):
    output = run("--organisation", "org-a", "--name", "Plain", "--scopes", "report")
    assert ApiClient.objects.get(name="Plain").push_id is None
    assert "push" not in output.lower()
