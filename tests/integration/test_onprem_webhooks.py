"""Inbound webhooks in the on-premises shapes, end to end: the sandbox WhatsApp server sends the
business every documented kind of inbound message, status change and error (POST /inbound/...);
each flows through the shard's coreapp (durable webhook event) and a webapp to a local receiver as
`{"contacts", "messages"}`, `{"statuses"}` or `{"errors"}` with the documented fields, as JSON,
signed. A notification sent while no coreapp is connected arrives once one is."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.request

import pytest

from runtime_cluster import connected, start, webapp
from wacluster_testenv.eventually import eventually
from wacluster_testenv.localcluster import WEBHOOK_SIGNING_KEY, LocalCluster
from wacluster_testenv.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.integration
USER = "16315551234"
MEDIA_KINDS = ["image", "audio", "video", "document", "voice", "sticker"]


class Receiver:
    """What the receiver got, as (path, headers, body)."""

    received: list = []


@pytest.fixture
def receiver():
    with webhook_receiver() as (url, deliveries):
        Receiver.received = deliveries
        yield f"{url}/whatsapp"


def produce(cluster: LocalCluster, kind: str, **request) -> dict:
    """Ask the sandbox to send the business one inbound notification; its answer."""
    call = urllib.request.Request(f"http://127.0.0.1:{cluster.gateway_port}/inbound/{kind}", method="POST",
                                  data=json.dumps(request).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(call, timeout=5) as resp:
        return json.loads(resp.read())


def bodies() -> list[dict]:
    return [delivery.json() for delivery in Receiver.received]


def arrived(payload: dict) -> dict | None:
    return next((b for b in bodies() if b == payload), None)


def check_message_shape(body: dict, kind: str) -> None:
    [message] = body["messages"]
    assert message["from"] == USER and message["type"] == kind and message["timestamp"].isdigit()
    assert message["id"]
    if kind == "system":
        assert "contacts" not in body
        assert message["system"]["type"] == "user_changed_number" and message["system"]["new_wa_id"]
        return
    assert body["contacts"] == [{"profile": {"name": "Sandbox User"}, "wa_id": USER}]
    if kind == "text":
        assert message["text"] == {"body": "hello from the sandbox"}
    elif kind in MEDIA_KINDS:
        media = message[kind]
        assert media["id"] and media["mime_type"] and len(media["sha256"]) == 64
        if kind == "document":
            assert media["filename"]
    elif kind == "location":
        assert {"latitude", "longitude", "name", "address"} <= set(message["location"])
    elif kind == "contacts":
        assert message["contacts"][0]["name"]["formatted_name"] and message["contacts"][0]["phones"]
    elif kind == "interactive":
        reply = message["interactive"]["type"]
        assert reply in ("button_reply", "list_reply") and message["interactive"][reply]["id"] == "0"
        assert message["context"]["id"].startswith("wamid.")
    elif kind == "button":
        assert message["button"] == {"payload": "yes-payload", "text": "Yes"} and message["context"]["from"]
    elif kind == "unknown":
        assert message["errors"][0]["code"] == 501


def test_every_inbound_kind_reaches_the_webhook_in_the_onprem_shape(cluster, receiver):
    start(cluster)
    api = webapp(cluster)
    eventually(lambda: connected(cluster), 30, what="shard 0 served")
    # `sent` statuses are opt-in (webhooks.message.sent, or sent_status), as on-premises.
    assert api.request("PATCH", "/v1/settings/application",
                       {"webhooks": {"url": receiver, "message": {"sent": True}}}).status == 200
    # A message's automatic `delivered` status reaching the receiver shows the coreapp has the URL.
    sent = api.send_until_accepted(USER, "hello")
    eventually(lambda: any(s["id"] == sent for b in bodies() for s in b.get("statuses", [])), 30,
               what="the sent message's delivered status at the receiver")

    produced = []
    for kind in ["text", *MEDIA_KINDS, "location", "contacts", "button", "system", "unknown"]:
        produced.append((kind, produce(cluster, "message", type=kind, **{"from": USER})))
    for reply in ("button_reply", "list_reply"):
        produced.append(("interactive", produce(cluster, "message", type="interactive", reply=reply,
                                                **{"from": USER})))
    statuses = {status: produce(cluster, "status", id=sent, status=status, recipient_id=USER)
                for status in ("sent", "delivered", "read", "failed", "deleted")}
    error = produce(cluster, "error", code=1011, title="Service not ready", details="the sandbox says so")
    assert all(answer["sent"] for _, answer in produced) and all(a["sent"] for a in statuses.values())

    everything = [a["payload"] for _, a in produced] + [a["payload"] for a in statuses.values()] + [error["payload"]]
    eventually(lambda: all(arrived(p) for p in everything), 60, what="every notification at the receiver",
               details=lambda: f"{len(Receiver.received)} received")

    for kind, answer in produced:
        check_message_shape(arrived(answer["payload"]), kind)
    for status, answer in statuses.items():
        [item] = arrived(answer["payload"])["statuses"]
        assert (item["id"], item["status"], item["recipient_id"]) == (sent, status, USER)
        assert item["timestamp"].isdigit()
        if status == "failed":
            assert item["errors"][0]["code"] == 470 and item["errors"][0]["title"]
        else:
            assert "errors" not in item
    assert arrived(error["payload"]) == {"errors": [{"code": 1011, "title": "Service not ready",
                                                     "details": "the sandbox says so"}]}
    for _, headers, body in Receiver.received:
        assert headers["Content-Type"] == "application/json"
        expected = "sha256=" + hmac.new(WEBHOOK_SIGNING_KEY.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Wacluster-Signature-256"] == expected


def test_a_notification_sent_while_no_coreapp_is_connected_arrives_once_one_is(cluster, receiver):
    cluster.configure(webhook_url=receiver)
    cluster.register()
    waiting = produce(cluster, "message", type="text", body="while you were away", account=cluster.phone,
                      **{"from": USER})
    assert waiting["sent"] is False
    start(cluster)
    webapp(cluster)
    eventually(lambda: arrived(waiting["payload"]), 60, what="the held message at the receiver")
    assert bodies().count(waiting["payload"]) == 1
