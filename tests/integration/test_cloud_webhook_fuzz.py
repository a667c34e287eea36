"""Fuzzing the webapps' endpoint for Meta's webhooks (runtime/webapp/cloud_webhooks.py) through a
real webapp on PostgreSQL: Meta's payloads of every kind, rightly signed so they pass the
signature and reach the parser, with one value anywhere replaced by any JSON or removed, and
verification requests with any query. No answer is a 5xx, and the relay to the business's
webhook, which translates what was stored, never fails or restarts a task on them."""

from __future__ import annotations

import json
import random
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_cloud_webhooks import NUMBER, PATH, call, cloud_env, post
from wacluster_testenv import cloudapi_inbound as cloud
from wacluster_testenv.eventually import eventually
from wacluster_testenv.localcluster import LocalCluster
from wacluster_testenv.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.integration

EXAMPLES = 250  # each one POST: bounded

ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)


def payloads() -> list[dict[str, Any]]:
    """One payload of each kind Meta sends: every inbound message type, statuses, errors."""
    found = [cloud.inbound(cloud.message(kind), NUMBER) for kind in cloud.TYPES]
    status = {"id": cloud.wamid(), "status": "delivered", "timestamp": "1700000000", "recipient_id": "16315551234",
              "biz_opaque_callback_data": "our-id", "conversation": {"id": "c1", "origin": {"type": "service"}},
              "pricing": {"billable": True, "pricing_model": "CBP", "category": "service"}}
    found.append(cloud.envelope({"statuses": [status]}, NUMBER))
    found.append(cloud.envelope({"statuses": [{**status, "status": "failed", "errors": [{
        "code": 131026, "title": "Message undeliverable"}]}]}, NUMBER))
    found.append(cloud.envelope({"errors": [{"code": 131000, "title": "Something went wrong"}]}, NUMBER))
    return found


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON value (as key/index paths)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, prefix + (index,))
    return found


def mutated(payload: dict[str, Any], where: tuple, replacement: Any, remove: bool) -> Any:
    if not where:
        return replacement
    copy = json.loads(json.dumps(payload))
    parent = copy
    for step in where[:-1]:
        parent = parent[step]
    if remove and isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent[where[-1]] = replacement
    return copy


@pytest.fixture
def fuzzed_webapp(lone_webapp: LocalCluster):
    with webhook_receiver() as (url, deliveries):
        lone_webapp.configure(webhook_url=url)
        lone_webapp.webapp_env = cloud_env()
        lone_webapp.start_webapp()
        yield lone_webapp, deliveries


def test_mutated_payloads_and_queries_get_no_server_error_and_break_no_task(fuzzed_webapp):
    cluster, deliveries = fuzzed_webapp
    port = cluster.roles["webapp"].port
    kinds = payloads()
    answers: list[tuple[int, str]] = []

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(kind=st.integers(0, len(kinds) - 1), place=st.integers(0, 10_000), replacement=ANY_JSON,
           remove=st.booleans())
    def signed_post(kind, place, replacement, remove):
        payload = kinds[kind]
        where = random.Random(place).choice(paths(payload))
        body = json.dumps(mutated(payload, where, replacement, remove)).encode()
        answers.append((post(port, body), f"{where} -> {json.dumps(replacement)[:80]}"))

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(query=st.dictionaries(st.sampled_from(["hub.mode", "hub.verify_token", "hub.challenge", "x"]),
                                 st.text(max_size=300), max_size=4))
    def verification(query):
        answers.append((call(port, "GET", f"{PATH}?{urlencode(query)}")[0], f"GET {query}"))

    signed_post()
    verification()
    assert len(answers) > EXAMPLES / 2
    server_errors = [(status, what) for status, what in answers if status >= 500]
    assert server_errors == [], server_errors[:5]
    assert any(status == 200 for status, _ in answers)  # the mutations did reach the parser and the store
    # What was stored is relayed (or dropped as not relayable) without breaking the relay.
    eventually(lambda: cluster.query("SELECT count(*) FROM cloud_notifications WHERE relayed_at IS NULL "
                                     "AND attempts = 0")[0][0] == 0, 60, what="every stored notification handled")
    output = cluster.roles["webapp"].output()
    for sign in ("unhandled error on", "restarting task", "failed: "):
        assert sign not in output, output[output.find(sign) - 2000:][:4000]
    assert deliveries  # the valid-shaped ones reached the business


def test_a_users_text_with_a_nul_character_is_kept_and_relayed_with_a_replacement(fuzzed_webapp):
    """PostgreSQL cannot store U+0000; the payload was a 500 (Meta retries it for days, then
    drops the user's message). The character becomes U+FFFD; the message is kept."""
    cluster, deliveries = fuzzed_webapp
    message = cloud.message("text", body="before\x00after")
    assert post(cluster.roles["webapp"].port, cloud.inbound(message, NUMBER)) == 200
    relayed = eventually(lambda: [m for d in deliveries for m in d.json().get("messages", [])], 30,
                         what="the message relayed")
    assert [m["text"]["body"] for m in relayed] == ["before\ufffdafter"]
