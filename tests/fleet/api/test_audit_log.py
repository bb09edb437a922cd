"""Every API write is logged with the client that made it, never with its token."""

from __future__ import annotations

import logging

import pytest

from fleet.models import ApiClient
from fleet.services import api_client_create
from tests.isolation.routes import api_routes


def test_a_write_is_logged_with_client_id_prefix_method_path_and_status(org_a, http, caplog):
    client, token = api_client_create(organisation=org_a, name="Logged", scopes=["enrol"])
    with caplog.at_level(logging.INFO, logger="fleetpatch.api.audit"):
        response = http(token).post("/api/v1/devices/", {"serial": "S-9"}, format="json")
    assert response.status_code == 201
    (record,) = [r for r in caplog.records if r.name == "fleetpatch.api.audit"]
    line = record.getMessage()
    assert f"client={client.pk}" in line
    assert f"prefix={client.token_prefix}" in line
    assert "method=POST path=/api/v1/devices/ status=201" in line
    assert token not in line


def test_a_refused_write_is_logged_too_and_reads_are_not(org_a, http, caplog):
    _client, token = api_client_create(organisation=org_a, name="Reader", scopes=["read"])
    with caplog.at_level(logging.INFO, logger="fleetpatch.api.audit"):
        http(token).get("/api/v1/devices/")
        http(token).post("/api/v1/devices/", {"serial": "S-9"}, format="json")
        http(None).post("/api/v1/devices/", {"serial": "S-9"}, format="json")
    lines = [r.getMessage() for r in caplog.records if r.name == "fleetpatch.api.audit"]
    assert len(lines) == 2
    assert "status=403" in lines[0]
    assert lines[1].startswith("client=- prefix=-") and "status=401" in lines[1]
    assert ApiClient.objects.count() == 1


def _write_operations() -> list[tuple[str, str]]:
    return sorted(
        (route.sample_path(), method) for route in api_routes() for method in route.methods() if method != "GET"
    )


def test_the_api_has_write_operations_to_audit():
    """The resolver walk below must find the writes, or the test after it would check nothing."""
    paths = {path for path, _method in _write_operations()}
    assert {"/api/v1/devices/", "/api/v1/checkins/", "/api/v1/ingest/amapi/", "/api/v1/ingest/headwind/"} <= paths


@pytest.mark.parametrize(("path", "method"), _write_operations())
def test_every_api_write_operation_is_logged_with_its_client(org_a, http, caplog, path, method):
    """Every write the URL resolver serves (a new endpoint included), whatever its outcome."""
    client, token = api_client_create(
        organisation=org_a, name="Audited", scopes=["read", "report", "enrol", "catalogue"]
    )
    with caplog.at_level(logging.INFO, logger="fleetpatch.api.audit"):
        response = getattr(http(token), method.lower())(path, {}, format="json")
    lines = [r.getMessage() for r in caplog.records if r.name == "fleetpatch.api.audit"]
    # The Pub/Sub push endpoint never reads a FleetPatch token: its refusal is logged without a client.
    who = (
        "client=- prefix=-"
        if "/ingest/amapi/push/" in path
        else f"client={client.pk} prefix={client.token_prefix} organisation={org_a.pk}"
    )
    assert lines == [f"{who} method={method} path={path} status={response.status_code}"]
    assert token not in lines[0]
