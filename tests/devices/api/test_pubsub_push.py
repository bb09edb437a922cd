"""POST /api/v1/ingest/amapi/push/<push id>/: Google Pub/Sub pushes as Pub/Sub sends them.

Authenticated by the push secret in the URL or by Google's OIDC token (signed here by the test's own RSA key,
served from a JWKS file in settings); acknowledged (2xx) unless a retry can help.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from devices.models import CheckIn, Device, PubSubMessage, RejectedMessage
from fleet.models import ApiClient
from fleet.services import api_client_push_enable, api_client_push_secret_revoke, api_client_revoke
from tests.api_personas import ALL_SCOPES, make_client
from tests.devices.checkins.test_parsers import amapi_device
from tests.factories import DeviceFactory, DeviceModelFactory, OSBuildFactory

SERVICE_ACCOUNT = "amapi-push@fleetpatch-prod.iam.gserviceaccount.com"
KID = "6f7254101f56e41cf35c9926de84a2d552b4c6f1"


def envelope(device: dict | None, kind: str = "STATUS_REPORT", message_id: str = "136969346945") -> dict:
    """A push exactly as Pub/Sub sends it (both spellings of the id and time, as Google does)."""
    message = {
        "attributes": {"notificationType": kind},
        "messageId": message_id,
        "message_id": message_id,
        "publishTime": "2024-03-01T07:30:01.123Z",
        "publish_time": "2024-03-01T07:30:01.123Z",
    }
    if device is not None:
        message["data"] = base64.b64encode(json.dumps(device).encode()).decode()
    return {"message": message, "subscription": "projects/fleetpatch-prod/subscriptions/amapi-push"}


@pytest.fixture
def xcover(db):
    model = DeviceModelFactory(manufacturer__name="Samsung", manufacturer__slug="samsung", name="SM-G556B")
    return OSBuildFactory(model=model, build_number="UP1A.231005.007.G556BXXS4BXB1")


@pytest.fixture
def push_client(org_a) -> tuple[ApiClient, str]:
    client, _token = make_client(org_a, "Android Management API", ALL_SCOPES)
    return api_client_push_enable(api_client=client, service_account=SERVICE_ACCOUNT)


def push(client: ApiClient, body: dict, *, secret: str | None = None, bearer: str | None = None):
    http = APIClient()
    if bearer is not None:
        http.credentials(HTTP_AUTHORIZATION=f"Bearer {bearer}")
    url = reverse("api-ingest-amapi-push", kwargs={"push_id": client.push_id})
    return http.post(f"{url}?token={secret}" if secret is not None else url, body, format="json")


# --- Push secret in the URL -------------------------------------------------------------------------


def test_a_push_with_the_url_secret_is_stored_as_a_check_in(push_client, org_a, xcover):
    client, secret = push_client
    DeviceFactory(organisation=org_a, model=xcover.model, serial="R58N12ABCDE", imei=None)

    response = push(client, envelope(amapi_device()), secret=secret)

    assert response.status_code == 201, response.json()
    check_in = CheckIn.objects.get(device__serial="R58N12ABCDE")
    assert (check_in.source, check_in.build) == ("amapi", xcover)
    assert client.push_url(secret).endswith(f"/api/v1/ingest/amapi/push/{client.push_id}/?token={secret}")


def test_a_wrong_revoked_or_rotated_secret_is_401_with_a_reason(push_client, org_a):
    client, secret = push_client
    wrong = push(client, envelope(amapi_device()), secret="not-the-secret")
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "Invalid push secret."

    client, new_secret = api_client_push_enable(api_client=client)  # rotation: the old secret stops at once
    assert push(client, envelope(amapi_device()), secret=secret).status_code == 401
    assert push(client, envelope(amapi_device()), secret=new_secret).status_code == 201

    api_client_push_secret_revoke(api_clients=ApiClient.objects.filter(pk=client.pk))
    revoked = push(client, envelope(amapi_device(), message_id="2"), secret=new_secret)
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["detail"]


def test_a_revoked_api_client_cannot_push_and_only_its_hash_is_stored(push_client):
    client, secret = push_client
    assert secret not in (client.push_secret_hash, client.push_id)
    api_client_revoke(api_clients=ApiClient.objects.filter(pk=client.pk))
    assert push(client, envelope(amapi_device()), secret=secret).status_code == 401


def test_a_fleetpatch_token_is_not_read_as_a_push_credential(org_a, push_client):
    client, _secret = push_client
    _other, token = make_client(org_a, "Bearer MDM", ALL_SCOPES)
    response = push(client, envelope(amapi_device()), bearer=token)
    assert response.status_code == 401
    assert "OIDC token" in response.json()["detail"]


# --- Google's OIDC token ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def google_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_file(settings, tmp_path, google_key):
    """Google's certs as an offline installation mirrors them: a JWKS file named in settings."""
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(google_key.public_key()))
    path = tmp_path / "google-certs.json"
    path.write_text(json.dumps({"keys": [{**public, "kid": KID, "alg": "RS256", "use": "sig"}]}))
    settings.PUBSUB_OIDC_JWKS_FILE = str(path)
    return path


def google_token(client: ApiClient, key, **changes) -> str:
    """A token shaped as Pub/Sub's push authentication sends it."""
    now = int(time.time())
    claims = {
        "aud": client.push_token_audience,
        "azp": "113774264463038321964",
        "email": SERVICE_ACCOUNT,
        "email_verified": True,
        "exp": now + 3600,
        "iat": now,
        "iss": "https://accounts.google.com",
        "sub": "113774264463038321964",
    }
    kid = changes.pop("kid", KID)
    claims.update(changes)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def test_a_push_with_googles_signed_oidc_token_is_stored(push_client, jwks_file, google_key, org_a, xcover):
    client, _secret = push_client
    response = push(client, envelope(amapi_device()), bearer=google_token(client, google_key))
    assert response.status_code == 201, response.json()
    assert Device.objects.filter(organisation=org_a, serial="R58N12ABCDE").exists()
    # The audience is the push URL unless one is configured; the short issuer spelling is Google's too.
    client, _ = api_client_push_enable(api_client=client, audience="fleetpatch-amapi", with_secret=False)
    token = google_token(client, google_key, aud="fleetpatch-amapi", iss="accounts.google.com")
    assert push(client, envelope(amapi_device(), message_id="2"), bearer=token).status_code == 200


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"aud": "https://elsewhere.example.org/push"}, "another audience"),
        ({"email": "someone-else@evil-project.iam.gserviceaccount.com"}, "service account"),
        ({"email_verified": False}, "not verified"),
        ({"iss": "https://evil.example.org"}, "not issued by Google"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
        ({"kid": "no-such-key"}, "unknown key"),
    ],
    ids=["wrong-audience", "wrong-email", "email-not-verified", "wrong-issuer", "expired", "unknown-kid"],
)
def test_an_oidc_token_that_does_not_hold_is_401_naming_why(push_client, jwks_file, google_key, changes, reason):
    client, _secret = push_client
    response = push(client, envelope(amapi_device()), bearer=google_token(client, google_key, **changes))
    assert response.status_code == 401
    assert reason in response.json()["detail"]
    assert not CheckIn.objects.exists()


def test_a_token_signed_by_another_key_under_googles_key_id_is_401(push_client, jwks_file):
    client, _secret = push_client
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = push(client, envelope(amapi_device()), bearer=google_token(client, forger))
    assert response.status_code == 401
    assert "signature" in response.json()["detail"]


def test_an_oidc_token_is_refused_by_a_client_without_a_service_account(org_a, jwks_file, google_key):
    client, _token = make_client(org_a, "Secret only", ALL_SCOPES)
    client, _secret = api_client_push_enable(api_client=client)
    response = push(client, envelope(amapi_device()), bearer=google_token(client, google_key))
    assert response.status_code == 401
    assert "service account" in response.json()["detail"]


def test_unreachable_signing_keys_are_a_503_not_a_hang(push_client, settings, google_key):
    client, _secret = push_client
    settings.PUBSUB_OIDC_JWKS_FILE = ""
    settings.PUBSUB_OIDC_JWKS_URL = "http://127.0.0.1:9/oauth2/v3/certs"  # the discard port: refused at once
    started = time.monotonic()
    response = push(client, envelope(amapi_device()), bearer=google_token(client, google_key))
    assert response.status_code == 503
    assert "signing keys" in response.json()["detail"]
    assert time.monotonic() - started < settings.PUBSUB_OIDC_JWKS_TIMEOUT + 1


# --- Every notification type ------------------------------------------------------------------------


def test_an_enrollment_device_with_only_enrollment_time_is_dated_by_it(push_client, org_a, xcover):
    client, secret = push_client
    device = amapi_device()
    for field in ("lastStatusReportTime", "lastPolicySyncTime"):
        del device[field]
    response = push(client, envelope(device, kind="ENROLLMENT"), secret=secret)
    assert response.status_code == 201, response.json()
    assert response.json()["enrolled"] is True
    assert CheckIn.objects.get().reported_at == dt.datetime(2023, 11, 2, 9, 12, 44, 120000, tzinfo=dt.UTC)


def test_an_enrollment_device_without_any_time_is_dated_by_the_messages_publish_time(push_client, xcover):
    client, secret = push_client
    device = amapi_device()
    for field in ("lastStatusReportTime", "lastPolicySyncTime", "enrollmentTime"):
        del device[field]
    response = push(client, envelope(device, kind="ENROLLMENT"), secret=secret)
    assert response.status_code == 201, response.json()
    assert CheckIn.objects.get().reported_at == dt.datetime(2024, 3, 1, 7, 30, 1, 123000, tzinfo=dt.UTC)


@pytest.mark.parametrize("kind", ["STATUS_REPORT", "COMPLIANCE_REPORT"])
def test_status_and_deprecated_compliance_reports_carry_a_device(push_client, xcover, kind):
    client, secret = push_client
    response = push(client, envelope(amapi_device(), kind=kind), secret=secret)
    assert response.status_code == 201, response.json()
    assert CheckIn.objects.get().device.serial == "R58N12ABCDE"


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        ("COMMAND", {"name": "enterprises/LC00abcd/devices/3a1b/operations/1", "done": True}),
        ("USAGE_LOGS", {"device": "enterprises/LC00abcd/devices/3a1b", "events": []}),
        ("ENTERPRISE_UPGRADE", {"enterprise": "enterprises/LC00abcd", "upgradeState": "UPGRADE_STATE_SUCCEEDED"}),
        ("SOMETHING_GOOGLE_ADDS_LATER", {"whatever": 1}),
        ("test", None),
    ],
)
def test_notifications_without_a_device_are_acknowledged_and_ignored(push_client, kind, payload):
    client, secret = push_client
    response = push(client, envelope(payload, kind=kind), secret=secret)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert response.json()["notification_type"] == kind
    assert not CheckIn.objects.exists()
    assert not RejectedMessage.objects.exists()


def test_a_body_that_is_no_pubsub_envelope_is_a_400_naming_message(push_client):
    client, secret = push_client
    response = push(client, amapi_device(), secret=secret)
    assert response.status_code == 400
    assert "message" in response.json()


# --- Permanent errors: acknowledged and recorded ----------------------------------------------------


def test_a_device_that_fails_validation_is_acknowledged_recorded_and_listed(push_client, org_a, http, manager_a):
    client, secret = push_client
    device = amapi_device()
    device["hardwareInfo"]["serialNumber"] = ""
    device["networkInfo"]["imei"] = "35693803564380X"  # junk
    del device["name"]  # and no MDM id: no identity left

    response = push(client, envelope(device), secret=secret)

    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "rejected"
    assert "networkInfo.imei" in answer["errors"]
    rejected = RejectedMessage.objects.get(pk=answer["rejected_message_id"])
    assert (rejected.organisation, rejected.api_client, rejected.kind) == (org_a, client, "device")
    assert (rejected.notification_type, rejected.message_id) == ("STATUS_REPORT", "136969346945")
    assert rejected.raw["hardwareInfo"]["model"] == "SM-G556B"
    assert not CheckIn.objects.exists()

    # The API lists it (scope read) ...
    _reader, token = make_client(org_a, "Reader", ["read"])
    listed = http(token).get("/api/v1/rejected-messages/", {"reason": "device"})
    assert listed.status_code == 200
    (row,) = listed.json()["results"]
    assert (row["id"], row["message_id"], row["reason"]) == (rejected.pk, "136969346945", "device")
    assert row["errors"] == answer["errors"]
    # ... and so does the admin, to the organisation's manager.
    admin = APIClient()
    admin.force_login(manager_a)
    page = admin.get(reverse("admin:devices_rejectedmessage_changelist"), {"kind__exact": "device"})
    assert page.status_code == 200
    assert "136969346945" in page.content.decode()
    detail = admin.get(reverse("admin:devices_rejectedmessage_change", args=[rejected.pk]))
    assert "networkInfo.imei" in detail.content.decode()


def test_a_device_the_ingestion_refuses_is_recorded_too(org_a, xcover):
    client, _token = make_client(org_a, "Report only", ["report"])
    client, secret = api_client_push_enable(api_client=client)
    response = push(client, envelope(amapi_device()), secret=secret)  # unknown device, no `enrol` scope
    assert response.status_code == 200
    assert RejectedMessage.objects.get().kind == "ingest"


def test_a_report_stored_with_a_junk_field_dropped_is_recorded_as_a_warning(push_client, org_a, xcover):
    client, secret = push_client
    DeviceFactory(organisation=org_a, model=xcover.model, serial="R58N12ABCDE", imei=None)
    device = amapi_device(networkInfo={"imei": "99000012345678"})  # an MEID where the IMEI goes

    response = push(client, envelope(device), secret=secret)

    assert response.status_code == 201, response.json()
    assert CheckIn.objects.filter(device__serial="R58N12ABCDE").count() == 1
    recorded = RejectedMessage.objects.get()
    assert (recorded.kind, recorded.message_id, recorded.api_client) == ("warning", "136969346945", client)
    assert list(recorded.errors) == ["networkInfo.imei"]
    assert "MEID" in recorded.errors["networkInfo.imei"][0]


def test_a_clean_report_and_an_unknown_model_record_no_warning(push_client, org_a):
    client, secret = push_client
    device = amapi_device()
    device["hardwareInfo"]["model"] = "SM-X930"  # not in the catalogue: kept as reported_model, no record

    response = push(client, envelope(device), secret=secret)

    assert response.status_code == 201, response.json()
    assert Device.objects.get().reported_model.endswith("SM-X930")
    assert not RejectedMessage.objects.exists()


def test_the_rejected_messages_of_another_organisation_are_not_listed(org_a, org_b, http):
    RejectedMessage.objects.create(organisation=org_b, kind="payload", errors={"message.data": ["x"]})
    _reader, token = make_client(org_a, "Reader", ["read"])
    assert http(token).get("/api/v1/rejected-messages/").json()["results"] == []


# --- Redeliveries -----------------------------------------------------------------------------------


def test_a_redelivered_message_is_acknowledged_and_stores_nothing_new(push_client, xcover):
    client, secret = push_client
    assert push(client, envelope(amapi_device()), secret=secret).status_code == 201
    bad = envelope(amapi_device(), message_id="777")
    bad["message"]["data"] = "%%%"
    assert push(client, bad, secret=secret).json()["status"] == "rejected"

    for body in (envelope(amapi_device()), bad):
        again = push(client, body, secret=secret)
        assert again.status_code == 200
        assert again.json()["status"] == "redelivered"
    assert CheckIn.objects.count() == 1
    assert RejectedMessage.objects.count() == 1


def test_a_transient_database_failure_is_a_503_and_does_not_mark_the_message_received(push_client, xcover):
    client, secret = push_client

    def check_ins_unavailable(execute, sql, params, many, context):
        if "devices_checkin" in sql and sql.lstrip().upper().startswith("INSERT"):
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(check_ins_unavailable):
        failed = push(client, envelope(amapi_device()), secret=secret)

    assert failed.status_code == 503
    assert failed["Retry-After"]
    assert not PubSubMessage.objects.exists()
    # Pub/Sub retries: the same message is then stored.
    assert push(client, envelope(amapi_device()), secret=secret).status_code == 201


# --- Device states ----------------------------------------------------------------------------------


def _report(state: str, at: str, **fields) -> dict:
    return amapi_device(state=state, appliedState=state, lastStatusReportTime=at, **fields)


def test_lost_and_disabled_are_recorded_shown_and_cleared_when_active_again(
    push_client, org_a, xcover, http, manager_a
):
    client, secret = push_client
    push(client, envelope(_report("ACTIVE", "2024-03-01T07:30:00Z"), message_id="1"), secret=secret)
    device = Device.objects.get(serial="R58N12ABCDE")
    assert (device.management_state, device.management_state_since) == ("", None)

    push(client, envelope(_report("LOST", "2024-03-02T07:30:00Z"), message_id="2"), secret=secret)
    device.refresh_from_db()
    assert device.management_state == "lost"
    assert device.management_state_since == dt.datetime(2024, 3, 2, 7, 30, tzinfo=dt.UTC)
    _reader, token = make_client(org_a, "Reader", ["read"])
    shown = http(token).get(f"/api/v1/devices/{device.pk}/").json()
    assert shown["management_state"] == "lost"
    admin = APIClient()
    admin.force_login(manager_a)
    assert "Lost" in admin.get(reverse("admin:devices_device_change", args=[device.pk])).content.decode()

    push(client, envelope(_report("DISABLED", "2024-03-03T07:30:00Z"), message_id="3"), secret=secret)
    device.refresh_from_db()
    assert device.management_state == "disabled"

    push(client, envelope(_report("ACTIVE", "2024-03-04T07:30:00Z"), message_id="4"), secret=secret)
    device.refresh_from_db()
    assert (device.management_state, device.management_state_since) == ("", None)
    assert device.retired_at is None


def test_a_deleted_device_is_retired_with_its_history_and_no_fresh_state(push_client, xcover):
    client, secret = push_client
    push(client, envelope(_report("ACTIVE", "2024-03-01T07:30:00Z"), message_id="1"), secret=secret)
    deleted = _report("DELETED", "2024-03-05T07:30:00Z")
    deleted["softwareInfo"]["androidVersion"] = "15"

    response = push(client, envelope(deleted, message_id="2"), secret=secret)

    assert response.status_code == 201
    device = Device.objects.get(serial="R58N12ABCDE")
    assert device.retired_at == dt.datetime(2024, 3, 5, 7, 30, tzinfo=dt.UTC)
    assert device.last_check_in_at == dt.datetime(2024, 3, 1, 7, 30, tzinfo=dt.UTC)
    assert device.android_version == "14"
    assert device.check_ins.count() == 2  # the history keeps both reports


def test_a_state_costs_one_statement_only_when_it_changes(push_client, xcover):
    client, secret = push_client
    push(client, envelope(_report("ACTIVE", "2024-03-01T07:30:00Z"), message_id="1"), secret=secret)
    with CaptureQueriesContext(connection) as unchanged:
        push(client, envelope(_report("ACTIVE", "2024-03-02T07:30:00Z"), message_id="2"), secret=secret)
    with CaptureQueriesContext(connection) as lost:
        push(client, envelope(_report("LOST", "2024-03-03T07:30:00Z"), message_id="3"), secret=secret)
    assert len(lost) == len(unchanged) + 1
