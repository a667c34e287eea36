"""The health document in the seeds' shape."""

from __future__ import annotations

import pytest

from wacluster.domain.health import NodeHealthInput, health

pytestmark = pytest.mark.unit


def node(name, role, primary=False, gateway="disconnected", serving=False, age=1.0, stopping=False, error=None):
    return NodeHealthInput(name, "abc123def456", role, primary, gateway, age, stopping, error, serving)


def test_before_registration_the_primary_is_unregistered_and_others_not_ready():
    doc = health([node("master1", "master"), node("master2", "master", primary=True), node("wacore1", "coreapp")],
                 registered=False, shard_count=1, stale_after=120)["health"]
    assert doc["master2:abc123def456"] == {"gateway_status": "unregistered", "role": "primary_master"}
    assert doc["master1:abc123def456"]["errors"][0]["code"] == 1011
    assert doc["wacore1:abc123def456"]["errors"][0]["title"] == "Service not ready"


def test_one_shard_one_connected_coreapp_and_disconnected_masters():
    doc = health([node("master1", "master"), node("master2", "master", primary=True),
                  node("wacore1", "coreapp", gateway="connected", serving=True), node("wacore2", "coreapp")],
                 registered=True, shard_count=1, stale_after=120)["health"]
    assert doc["master2:abc123def456"] == {"gateway_status": "disconnected", "role": "primary_master"}
    assert doc["master1:abc123def456"] == {"gateway_status": "disconnected", "role": "secondary_master"}
    assert doc["wacore1:abc123def456"] == {"gateway_status": "connected", "role": "coreapp"}
    assert doc["wacore2:abc123def456"] == {"gateway_status": "disconnected", "role": "coreapp"}


def test_with_several_shards_the_primary_master_is_connected_too():
    doc = health([node("master2", "master", primary=True)], registered=True, shard_count=2, stale_after=120)
    assert doc["health"]["master2:abc123def456"]["gateway_status"] == "connected"


def test_a_silent_node_is_reported_not_ready():
    doc = health([node("wacore1", "coreapp", age=500)], registered=True, shard_count=1, stale_after=120)
    assert "has not reported for 500s" in doc["health"]["wacore1:abc123def456"]["errors"][0]["details"]


def test_a_master_with_a_schema_error_says_so():
    doc = health([node("master1", "master", primary=True, error="schema version 3 is newer")],
                 registered=True, shard_count=1, stale_after=120)
    assert doc["health"]["master1:abc123def456"]["errors"][0]["details"] == "schema version 3 is newer"


def test_a_coreapp_the_cloud_api_refuses_keeps_its_shard_and_reports_sending_paused():
    reason = "sending paused: Cloud API 190: the access token is invalid or expired; sending paused for the account"
    doc = health([node("wacore1", "coreapp", gateway="paused", serving=True, error=reason)],
                 registered=True, shard_count=1, stale_after=120)["health"]
    assert doc["wacore1:abc123def456"] == {"gateway_status": "paused", "role": "coreapp", "errors": [
        {"code": 1011, "title": "Service not ready", "details": reason}]}
