"""The OpenAPI schema: generated without warnings, public, and describing auth, filters and errors."""

from __future__ import annotations

import io

import pytest
import yaml
from django.core.management import call_command


@pytest.fixture
def schema(anonymous, db) -> dict:
    response = anonymous.get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_generates_and_validates_without_warnings_or_errors(db, capsys):
    out = io.StringIO()
    # --fail-on-warn turns any warning (an unresolvable type, a view without queryset) into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    captured = capsys.readouterr()
    assert "Warning" not in captured.err, captured.err
    assert "Error" not in captured.err, captured.err
    assert yaml.safe_load(out.getvalue())["openapi"].startswith("3.")


def test_the_schema_and_the_docs_need_no_token(anonymous, db):
    assert anonymous.get("/api/v1/schema/").status_code == 200
    docs = anonymous.get("/api/v1/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


def test_the_schema_declares_bearer_auth_on_every_operation(schema):
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    push = "/api/v1/ingest/amapi/push/{push_id}/"
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path == push:
                continue
            assert operation.get("security") == [{"bearerAuth": []}], f"{method} {path}"
    # Pub/Sub cannot send a FleetPatch token: its push endpoint takes the secret in the URL (or an OIDC token).
    assert schema["paths"][push]["post"]["security"] == [{"pubsubPushSecret": []}]
    assert schema["components"]["securitySchemes"]["pubsubPushSecret"]["in"] == "query"


def test_every_operation_documents_its_error_responses(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"400", "401", "403", "404"} <= codes, f"{method} {path}: {codes}"
            if method != "get":
                assert {"413", "415"} <= codes, f"{method} {path}"


def test_every_device_filter_is_in_the_schema(schema):
    names = {p["name"] for p in schema["paths"]["/api/v1/devices/"]["get"]["parameters"]}
    assert {
        "compliance_status",
        "model",
        "model_id",
        "fleet",
        "fleet_id",
        "current_build",
        "patch_level_before",
        "last_check_in_before",
        "battery_status",
        "waived",
        "serial",
        "imei",
        "cursor",
        "page_size",
        "ordering",
    } <= names


def test_models_offer_no_write_operation(schema):
    assert set(schema["paths"]["/api/v1/models/"]) == {"get"}


# --- Found by schemathesis (tests/common/api/test_schemathesis.py): the schema must tell the truth --------


def test_a_devices_links_may_be_null_as_the_schema_says(schema):
    properties = schema["components"]["schemas"]["Device"]["properties"]
    for link in ("model", "fleet", "current_build", "target_build"):
        assert properties[link]["nullable"] is True, link


def test_an_ingestion_200_is_a_batch_or_the_result_of_a_single_report_already_received(schema):
    def refs(operation: dict, code: str) -> set[str]:
        answer = operation["responses"][code]["content"]["application/json"]["schema"]
        answer = schema["components"]["schemas"][answer["$ref"].rsplit("/", 1)[1]] if "$ref" in answer else answer
        return {option.get("$ref", "inline").rsplit("/", 1)[-1] for option in answer["oneOf"]}

    for path in ("/api/v1/checkins/", "/api/v1/ingest/headwind/"):
        assert refs(schema["paths"][path]["post"], "200") == {"BatchResult", "ItemResult"}
        assert refs(schema["paths"][path]["post"], "400") == {"ItemResult", "Error", "inline"}
    assert refs(schema["paths"]["/api/v1/ingest/amapi/"]["post"], "200") == {
        "BatchResult",
        "ItemResult",
        "PubSubAck",
    }


def test_every_ingestion_endpoint_documents_a_list_of_reports_as_its_body(schema):
    for path in ("/api/v1/checkins/", "/api/v1/ingest/amapi/", "/api/v1/ingest/headwind/"):
        body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        body = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]] if "$ref" in body else body
        options = body.get("oneOf") or body["anyOf"]
        assert {option.get("type") for option in options} >= {"array"}, path
        (batch,) = [option for option in options if option.get("type") == "array"]
        assert (batch["minItems"], batch["maxItems"]) == (1, 1000), path


def test_id_filters_declare_that_ids_start_at_one(schema):
    parameters = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/devices/"]["get"]["parameters"]}
    for name in ("model_id", "fleet_id"):
        assert parameters[name]["minimum"] == 1
    time_to_patch = schema["paths"]["/api/v1/compliance/time-to-patch/"]["get"]["parameters"]
    assert next(p for p in time_to_patch if p["name"] == "model")["schema"]["minLength"] == 1


def test_every_ingestion_endpoint_documents_its_405_413_and_415_bodies(schema):
    for path in ("/api/v1/checkins/", "/api/v1/ingest/amapi/", "/api/v1/ingest/headwind/"):
        responses = schema["paths"][path]["post"]["responses"]
        for code in ("405", "413", "415"):
            body = responses[code]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/Error"}, (path, code)
    assert set(schema["components"]["schemas"]["Error"]["properties"]) == {"detail"}


def test_the_foreign_ingestion_bodies_are_described_as_their_senders_send_them(schema):
    components = schema["components"]["schemas"]

    def options(path: str) -> list[dict]:
        ref = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        body = components[ref.rsplit("/", 1)[1]]
        return body.get("oneOf") or body["anyOf"]

    amapi = {option.get("$ref", "array").rsplit("/", 1)[-1] for option in options("/api/v1/ingest/amapi/")}
    assert amapi == {"AmapiDeviceRequest", "array", "PubSubPushEnvelopeRequest"}
    device = components["AmapiDeviceRequest"]["properties"]
    assert {"name", "lastStatusReportTime", "hardwareInfo", "softwareInfo", "networkInfo"} <= set(device)
    assert "serialNumber" in components["AmapiHardwareInfoRequest"]["properties"]
    assert "securityPatchLevel" in components["AmapiSoftwareInfoRequest"]["properties"]
    assert components["PubSubPushEnvelopeRequest"]["required"] == ["message"]
    headwind = {option.get("$ref", "array").rsplit("/", 1)[-1] for option in options("/api/v1/ingest/headwind/")}
    assert headwind == {"HeadwindDeviceInfoRequest", "array"}
    assert {"deviceId", "serial", "imei", "batteryLevel"} <= set(components["HeadwindDeviceInfoRequest"]["properties"])
    # The request bodies are not the answers' fields.
    assert "status" not in components["HeadwindDeviceInfoRequest"]["properties"]


def test_a_body_that_is_a_device_or_an_envelope_may_be_both_so_its_alternatives_are_any_of(schema):
    # Every field of an AMAPI Device is optional and unknown fields are ignored: an envelope is also one.
    ref = schema["paths"]["/api/v1/ingest/amapi/"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]) == {"anyOf"}


def test_a_body_that_refuses_unknown_fields_says_so(schema):
    components = schema["components"]["schemas"]
    assert components["PatchedDeviceUpdateRequest"]["additionalProperties"] is False
    # The others ignore fields they do not know, and do not claim otherwise.
    assert "additionalProperties" not in components["DeviceEnrolRequest"]


def test_no_query_parameter_may_be_empty_and_the_schema_says_so(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] != "query":
                    continue
                declared = parameter["schema"]
                if declared.get("type") == "string" and not {"enum", "format"} & set(declared):
                    assert declared.get("minLength") == 1, (method, path, parameter["name"])


def test_the_headwind_ids_may_be_text_or_numbers_as_headwind_sends_them(schema):
    properties = schema["components"]["schemas"]["HeadwindDeviceInfoRequest"]["properties"]
    for name in ("deviceId", "number"):
        assert {option["type"] for option in properties[name]["oneOf"]} == {"string", "integer"}
