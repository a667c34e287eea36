"""The account, health and contacts endpoints of a real webapp in cloud mode, against the local
Cloud API (wacluster_testenv.cloudapi): `/v1/account` and `/v1/account/verify` register the number
with `POST /{version}/{phone-number-id}/register` (the verify code is the two-step PIN), Cloud
refusals keep the on-premises error shape, `/v1/health` shows the shard owner connected while the
Graph API accepts the token, and `/v1/contacts` answers without any WhatsApp server to ask."""

from __future__ import annotations

import pytest

from runtime_cluster import connected, webapp
from wacluster.api.interprocess import Env
from wacluster_testenv.cloudapi_thread import ServedCloudApi
from wacluster_testenv.eventually import eventually

pytestmark = pytest.mark.integration

TOKEN = "EAAG-cloud-account-token-7c21"
SECRET = "cloud-account-app-secret"
PIN = "246810"
# The local Cloud API's number (cloudapi.DEFAULT_DISPLAY_PHONE_NUMBER) as the on-prem request gives it.
CC, NUMBER = "1", "5550783881"


@pytest.fixture
def cloud():
    with ServedCloudApi(access_token=TOKEN, app_secret=SECRET) as served:
        yield served


def cloud_webapp(cluster, cloud):
    """A master, one coreapp and a webapp, all in cloud mode; the account not registered yet. The
    fixture's sandbox is stopped: a cloud-mode cluster has none, and nothing may lean on it."""
    cluster.roles["sandbox"].stop()
    cluster.use_cloud_api(cloud.base, TOKEN, cloud.api.phone_number_id)
    cluster.webapp_env = {Env.GATEWAY_MODE: "cloud", Env.CLOUD_BASE_URL: cloud.base,
                          Env.CLOUD_ACCESS_TOKEN: TOKEN, Env.CLOUD_PHONE_NUMBER_ID: cloud.api.phone_number_id}
    cluster.start_master("master1")
    cluster.start_coreapp("wacore1")
    eventually(lambda: cluster.primary_master(), 30, what="a primary master")
    return webapp(cluster)


def by_role(health: dict) -> dict[str, dict]:
    return {key.split(":")[0]: value for key, value in health.items()}


def test_registration_maps_to_the_cloud_register_call_and_health_shows_the_owner_connected(cluster, cloud):
    api = cloud_webapp(cluster, cloud)
    assert by_role(api.health())["master1"]["gateway_status"] == "unregistered"
    cloud.api.two_step_pin = PIN  # the number's PIN, set earlier in WhatsApp Manager

    other = api.request("POST", "/v1/account", {"cc": "1", "phone_number": "5550001111", "method": "sms"})
    assert other.status == 400 and other.body["errors"][0]["code"] == 1009, other.body

    reply = api.request("POST", "/v1/account", {"cc": CC, "phone_number": NUMBER, "method": "sms", "cert": "Y2VydA=="})
    assert reply.status == 202, reply.body
    assert reply.body["account"] == [{"vname": "wacluster test"}]
    assert not cloud.api.registered

    wrong = api.request("POST", "/v1/account/verify", {"code": "111111"})
    assert wrong.status == 400, wrong.body
    error = wrong.body["errors"][0]
    assert error["code"] == 1009 and error["title"] == "Parameter value is not valid"
    assert "133005" in error["details"] and "PIN Mismatch" in error["details"]
    assert not cloud.api.registered
    assert cluster.query("SELECT count(*) FROM account")[0][0] == 0

    right = api.request("POST", "/v1/account/verify", {"code": PIN})
    assert right.status == 201, right.body
    assert cloud.api.registered
    assert cluster.query("SELECT phone FROM account") == [(f"+{CC}{NUMBER}",)]

    eventually(lambda: connected(cluster), 30, what="shard 0 served through the Cloud API")
    health = eventually(lambda: (h := by_role(api.health())).get("wacore1", {}).get("gateway_status") == "connected"
                        and h, 30, what="health showing the owner connected", details=lambda: str(api.health()))
    assert health["wacore1"] == {"gateway_status": "connected", "role": "coreapp"}
    assert health["master1"] == {"gateway_status": "disconnected", "role": "primary_master"}
    assert TOKEN not in "\n".join(role.output() for role in cluster.roles.values())


def test_a_pin_on_a_verified_number_registers_at_once_and_a_refused_token_is_the_on_prem_error(cluster, cloud):
    api = cloud_webapp(cluster, cloud)
    cloud.api.access_token = "another-token"  # the cluster's token is refused (190)
    refused = api.request("POST", "/v1/account", {"cc": CC, "phone_number": NUMBER, "pin": PIN})
    assert refused.status == 400 and "(#190)" in refused.body["errors"][0]["details"], refused.body
    cloud.api.access_token = TOKEN
    reply = api.request("POST", "/v1/account", {"cc": CC, "phone_number": NUMBER, "pin": PIN})
    assert reply.status == 201, reply.body
    assert cloud.api.registered and cloud.api.two_step_pin == PIN
    assert cluster.query("SELECT phone FROM account") == [(f"+{CC}{NUMBER}",)]


def test_contacts_are_valid_with_their_digits_as_wa_id_without_any_whatsapp_server(cluster, cloud):
    api = cloud_webapp(cluster, cloud)  # no sandbox runs: the webapp's gateway URL answers nothing
    for blocking in ("wait", "no_wait"):
        reply = api.request("POST", "/v1/contacts", {"blocking": blocking, "contacts": [
            "+1 (631) 555-1004", "16315551005", "not a number", "+12"]})
        assert reply.status == 200, reply.body
        assert reply.body["contacts"] == [
            {"input": "+1 (631) 555-1004", "status": "valid", "wa_id": "16315551004"},
            {"input": "16315551005", "status": "valid", "wa_id": "16315551005"},
            {"input": "not a number", "status": "invalid"},
            {"input": "+12", "status": "invalid"}]
    assert cluster.query("SELECT count(*) FROM contacts")[0][0] == 0
