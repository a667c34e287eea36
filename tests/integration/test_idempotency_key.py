"""`Idempotency-Key` on POST /v1/messages through a real webapp, coreapp, sandbox and PostgreSQL:
a client that did not get its answer (the connection was reset while the webapp died) retries
with the same key and the message is stored and sent once."""

from __future__ import annotations

import threading
import uuid

import pytest

from runtime_cluster import connected, start, webapp
from wacluster_testenv.apiclient import ApiClient, Reply
from wacluster_testenv.eventually import eventually

pytestmark = pytest.mark.integration

TEXT = {"to": "15551234567", "type": "text", "text": {"body": "once"}}


def send(api: ApiClient, key: str | None, body: dict = TEXT) -> Reply:
    return api.request("POST", "/v1/messages", body, headers={"Idempotency-Key": key} if key is not None else {})


def rows_with(cluster, key: str) -> list[tuple[str, str]]:
    return cluster.query("SELECT id, status FROM messages WHERE idempotency_key = %s ORDER BY created_at, id",
                         (key,))


def deliveries_of(cluster, message_id: str) -> int:
    return cluster.gateway("/inspect/deliveries")["send_attempts"].get(message_id, 0)


@pytest.fixture
def api(cluster) -> ApiClient:
    start(cluster, masters=1, coreapps=1)
    client = webapp(cluster)
    eventually(lambda: connected(cluster), 30, what="shard 0 connected")
    return client


def test_a_retry_with_the_same_key_and_body_gets_the_same_id_and_is_sent_once(cluster, api):
    key = str(uuid.uuid4())
    first = send(api, key)
    assert first.status == 201, first.body
    message_id = first.body["messages"][0]["id"]
    eventually(lambda: deliveries_of(cluster, message_id) == 1, 30, what="the message delivered")
    # The retry of a client that never saw the first answer; the same body, serialised otherwise.
    retry = send(api, f'"{key}"', {"text": {"body": "once"}, "type": "text", "to": "15551234567"})
    assert (retry.status, retry.body["messages"][0]["id"]) == (201, message_id)
    assert rows_with(cluster, key) == [(message_id, "delivered")]
    later = api.send_until_accepted("15551234568", "after the retry")  # once it is delivered, so was any retry
    eventually(lambda: deliveries_of(cluster, later) == 1, 30, what="a later message delivered")
    assert deliveries_of(cluster, message_id) == 1
    assert cluster.gateway()["duplicates"] == 0


def test_the_same_key_with_another_body_is_refused_422(cluster, api):
    key = str(uuid.uuid4())
    first = send(api, key)
    assert first.status == 201, first.body
    other = send(api, key, {**TEXT, "text": {"body": "another message"}})
    assert other.status == 422, other.body
    assert other.error["code"] == 1100 and "already used for another request" in other.error["details"]
    assert [i for i, _ in rows_with(cluster, key)] == [first.body["messages"][0]["id"]]


def test_concurrent_duplicates_store_one_message(cluster, api):
    key = str(uuid.uuid4())
    replies: list[Reply] = []
    go = threading.Barrier(12)

    def duplicate():
        go.wait()
        replies.append(send(api, key))

    threads = [threading.Thread(target=duplicate) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = rows_with(cluster, key)
    assert len(stored) == 1, stored
    statuses = sorted(r.status for r in replies)
    assert set(statuses) <= {201, 409} and 201 in statuses, statuses
    assert {r.body["messages"][0]["id"] for r in replies if r.status == 201} == {stored[0][0]}
    conflicts = [r for r in replies if r.status == 409]
    assert all(r.error["code"] == 1101 and r.headers.get("Retry-After") for r in conflicts), conflicts
    eventually(lambda: deliveries_of(cluster, stored[0][0]) == 1, 30, what="the one message delivered")


def test_a_request_answered_503_can_be_retried_with_its_key(cluster):
    """No coreapp yet: the first request is withdrawn (503, never sent), and its key must not keep
    the retry from sending the message once a coreapp serves the shard."""
    start(cluster, masters=1, coreapps=0)
    api = webapp(cluster)
    key = str(uuid.uuid4())
    refused = send(api, key)
    assert refused.status == 503, refused.body
    assert rows_with(cluster, key)[0][1] == "cancelled"
    cluster.start_coreapp("wacore1")
    eventually(lambda: connected(cluster), 30, what="shard 0 connected")
    retry = eventually(lambda: (r := send(api, key)).status == 201 and r, 30, what="the retry accepted")
    message_id = retry.body["messages"][0]["id"]
    assert [s for _, s in rows_with(cluster, key)][-1] != "cancelled"
    assert [i for i, s in rows_with(cluster, key) if s != "cancelled"] == [message_id]
    eventually(lambda: deliveries_of(cluster, message_id) == 1, 30, what="the retried message delivered")


@pytest.mark.parametrize("value, why", [
    ("", "empty"),
    ("k" * 256, "256 characters long"),
    ("caf\u00e9", "visible ASCII"),
    ("tab\tinside", "visible ASCII"),  # other control characters the HTTP parser refuses itself (400)
])
def test_a_malformed_key_is_refused_400_and_nothing_is_stored(lone_webapp, value, why):
    lone_webapp.register()
    api = webapp(lone_webapp)
    reply = send(api, value)
    assert reply.status == 400, reply.body
    assert reply.error["code"] == 1009 and "Idempotency-Key" in reply.error["details"] and why in reply.error["details"]
    assert lone_webapp.query("SELECT count(*) FROM messages")[0][0] == 0
