"""The application settings that choose which status webhooks are sent, end to end (sandbox
WhatsApp server → coreapp → PostgreSQL → webapp → receiver): a kind turned off with
webhooks.message (`read` here) is never queued nor delivered, `sent` is sent only once asked for
(webhooks.message.sent or the older sent_status), a kind turned back on is delivered again, and
`deleted` (no setting) always is."""

from __future__ import annotations

import json
import urllib.request

import pytest

from runtime_cluster import connected, start, webapp
from wacluster_testenv.eventually import eventually
from wacluster_testenv.localcluster import LocalCluster
from wacluster_testenv.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.integration
USER = "16315551234"


class Receiver:
    """What the receiver got."""

    received: list = []


@pytest.fixture
def receiver():
    with webhook_receiver() as (url, deliveries):
        Receiver.received = deliveries
        yield f"{url}/whatsapp"


def produce_status(cluster: LocalCluster, message_id: str, status: str) -> None:
    """The sandbox tells the business that `message_id` changed to `status`."""
    body = json.dumps({"id": message_id, "status": status, "recipient_id": USER}).encode()
    call = urllib.request.Request(f"http://127.0.0.1:{cluster.gateway_port}/inbound/status", method="POST",
                                  data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(call, timeout=5) as resp:
        assert json.loads(resp.read())["sent"]


def received(message_id: str) -> list[str]:
    return [s["status"] for delivery in Receiver.received for s in delivery.json().get("statuses", []) if s["id"] == message_id]


def queued(cluster: LocalCluster, message_id: str) -> list[str]:
    rows = cluster.query("SELECT s->>'status' FROM webhook_events, jsonb_array_elements(payload->'statuses') s "
                         "WHERE s->>'id' = %s ORDER BY id", (message_id,))
    return [r[0] for r in rows]


def test_status_kinds_turned_off_are_not_sent_and_kinds_turned_on_are(cluster, receiver):
    start(cluster)
    api = webapp(cluster)
    eventually(lambda: connected(cluster), 30, what="shard 0 served")
    # One write: a coreapp that has the URL has the filter too.
    assert api.request("PATCH", "/v1/settings/application",
                       {"webhooks": {"url": receiver, "message": {"read": False}}}).status == 200
    sent = api.send_until_accepted(USER, "hello")
    eventually(lambda: "delivered" in received(sent), 30, what="the automatic delivered status (kept)")

    for status in ("sent", "read", "deleted"):
        produce_status(cluster, sent, status)
    # Statuses are recorded in the order they arrive: once `deleted` is queued, the others were decided.
    eventually(lambda: "deleted" in received(sent), 30, what="the deleted status (always sent)")
    assert received(sent) == ["delivered", "deleted"]
    assert queued(cluster, sent) == ["delivered", "deleted"], "a status turned off is never even queued"

    assert api.request("PATCH", "/v1/settings/application",
                       {"sent_status": True, "webhooks": {"message": {"read": True}}}).status == 200

    def read_arrives() -> bool:  # the coreapp applies settings within a cycle: ask until it has
        produce_status(cluster, sent, "read")
        return "read" in received(sent)

    eventually(read_arrives, 30, interval=0.5, what="read statuses sent again once turned on")
    produce_status(cluster, sent, "sent")
    eventually(lambda: "sent" in received(sent), 30, what="the sent status, asked for with sent_status")
