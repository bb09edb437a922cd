"""Every API write is logged with the client that made it, never with its token."""

from __future__ import annotations

import logging

from fleet.models import ApiClient
from fleet.services import api_client_create


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
