"""The Cloud API's webhooks in, the on-premises webhooks out, through real webapps on PostgreSQL:
Meta's verification handshake; only POSTs signed with the app secret are stored; each inbound
message type reaches the business's receiver in the on-premises shape, signed by the cluster;
Meta's retry of a payload has one effect; a webapp killed right after answering 200 loses
nothing; a status webhook settles a send in doubt (delivered with its wamid, or failed)."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import signal
import ssl
import time
import urllib.request
from urllib.parse import urlencode

import psycopg
import pytest

from runtime_cluster import connected, webapp
from test_cloud_delivery import LocalCloud, metric, start_cloud_cluster
from test_onprem_webhooks import Receiver, receiver  # noqa: F401 (a fixture)
from wacluster.api.interprocess import Env
from wacluster.runtime.sandbox_inbound import message_payload
from wacluster_testenv import cloudapi_inbound as cloud
from wacluster_testenv.eventually import eventually
from wacluster_testenv.localcluster import WEBHOOK_SIGNING_KEY, LocalCluster

pytestmark = pytest.mark.integration
SECRET = "cloud-app-secret"
VERIFY_TOKEN = "a-verify-token-for-meta"
NUMBER = "106540352242922"
PATH = "/cloud/webhook"


def cloud_env() -> dict[str, str]:
    return {Env.CLOUD_APP_SECRET: SECRET, Env.CLOUD_VERIFY_TOKEN: VERIFY_TOKEN, Env.CLOUD_PHONE_NUMBER_ID: NUMBER}


def call(port: int, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ssl._create_unverified_context(), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def post(port: int, payload: dict | bytes, secret: str | None = SECRET) -> int:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return call(port, "POST", PATH, raw, headers)[0]


def stored(cluster: LocalCluster) -> list[tuple[str, bool]]:
    return cluster.query("SELECT key, relayed_at IS NOT NULL FROM cloud_notifications ORDER BY id")


def bodies() -> list[dict]:
    return [delivery.json() for delivery in Receiver.received]


@pytest.fixture
def cloud_webapp(lone_webapp: LocalCluster) -> LocalCluster:
    lone_webapp.configure()
    lone_webapp.webapp_env = cloud_env()
    lone_webapp.start_webapp()
    return lone_webapp


def port(cluster: LocalCluster, name: str = "webapp") -> int:
    return cluster.roles[name].port


def test_meta_verification_echoes_the_challenge_only_for_the_verify_token(cloud_webapp):
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    assert call(port(cloud_webapp), "GET", f"{PATH}?{urlencode(query)}") == (200, b"1158201444")
    for wrong in ({"hub.verify_token": "not-the-token"}, {"hub.mode": "unsubscribe"}, {"hub.verify_token": ""},
                  {"hub.verify_token": "tökén"}):
        status, body = call(port(cloud_webapp), "GET", f"{PATH}?{urlencode({**query, **wrong})}")
        assert status == 403 and b"1158201444" not in body
    assert call(port(cloud_webapp), "GET", f"{PATH}?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}")[0] == 403


def test_only_a_post_signed_with_the_app_secret_is_stored(cloud_webapp):
    payload = cloud.inbound(cloud.message("text"), NUMBER)
    assert post(port(cloud_webapp), payload, secret=None) == 401
    assert post(port(cloud_webapp), payload, secret="another-apps-secret") == 401
    raw = json.dumps(payload).encode()
    assert call(port(cloud_webapp), "POST", PATH, raw, {"X-Hub-Signature-256": "sha256=" + "0" * 64})[0] == 401
    assert call(port(cloud_webapp), "POST", PATH, raw, {"X-Hub-Signature-256": "sha256=ünïcode"})[0] == 401
    assert stored(cloud_webapp) == []
    assert post(port(cloud_webapp), payload) == 200  # no bearer token: the signature is the credential
    assert [key for key, _ in stored(cloud_webapp)] == [f"message:{payload['entry'][0]['changes'][0]['value']['messages'][0]['id']}"]
    assert post(port(cloud_webapp), b"not json") == 400
    assert post(port(cloud_webapp), b"x" * (3 * 1024 * 1024 + 1)) == 413
    assert len(stored(cloud_webapp)) == 1


def test_every_inbound_type_reaches_the_business_in_the_onprem_shape(cloud_webapp, receiver):
    cloud_webapp.configure(webhook_url=receiver)
    sent = {}
    for kind in cloud.TYPES:
        message = cloud.message(kind)
        sent[message["id"]] = kind
        assert post(port(cloud_webapp), cloud.inbound(message, NUMBER)) == 200
    eventually(lambda: {m["id"] for b in bodies() for m in b.get("messages", [])} == set(sent), 60,
               what="every inbound message at the receiver", details=lambda: f"{len(Receiver.received)} received")
    onprem = {"interactive_button_reply": ("interactive", {"reply": "button_reply"}),
              "interactive_list_reply": ("interactive", {"reply": "list_reply"}),
              "reaction": ("unknown", {}), "unsupported": ("unknown", {})}
    for body in bodies():
        [message] = body["messages"]
        kind, request = onprem.get(sent[message["id"]], (sent[message["id"]], {}))
        expected = message_payload({"type": kind, "from": cloud.DEFAULT_USER, **request}, "15550783881", 0)
        assert keys(body) == keys(expected), sent[message["id"]]
        assert message["type"] == kind
        if kind != "system":
            assert body["contacts"] == [{"profile": {"name": "Cloud User"}, "wa_id": cloud.DEFAULT_USER}]
    for _, headers, raw in Receiver.received:
        assert headers["X-Wacluster-Signature-256"] == \
            "sha256=" + hmac.new(WEBHOOK_SIGNING_KEY.encode(), raw, hashlib.sha256).hexdigest()
    assert all(relayed for _, relayed in stored(cloud_webapp))


def keys(value):
    """The keys and nesting of a JSON body, without its values."""
    if isinstance(value, dict):
        return {k: keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [keys(v) for v in value]
    return None


def test_metas_retry_of_a_payload_is_delivered_once(cloud_webapp, receiver):
    cloud_webapp.configure(webhook_url=receiver)
    first, second = cloud.message("text", body="once"), cloud.message("text", body="also once")
    payload = cloud.inbound(first, NUMBER)
    assert post(port(cloud_webapp), payload) == 200
    assert post(port(cloud_webapp), payload) == 200  # Meta did not see the first 200 and retries
    # A later delivery batching the retried message with a new one: only the new one is new.
    both = cloud.envelope({"contacts": [{"profile": {"name": "Cloud User"}, "wa_id": cloud.DEFAULT_USER}],
                           "messages": [first, second]}, NUMBER)
    assert post(port(cloud_webapp), both) == 200
    eventually(lambda: len(stored(cloud_webapp)) == 2 and all(r for _, r in stored(cloud_webapp)), 30,
               what="both messages relayed")
    eventually(lambda: cloud_webapp.query("SELECT count(*) FROM webhook_events WHERE delivered_at IS NULL")[0][0] == 0,
               30, what="every webhook event delivered")
    delivered = [m["id"] for b in bodies() for m in b.get("messages", [])]
    assert sorted(delivered) == sorted([first["id"], second["id"]])


def test_a_webapp_killed_right_after_answering_200_loses_nothing(cloud_webapp, receiver):
    cloud_webapp.configure(webhook_url=receiver)
    message = cloud.message("text", body="stored, then the webapp died")
    with psycopg.connect(cloud_webapp.dsn) as holder:
        # While the settings are locked the webapp's relay cannot finish relaying (it reads them
        # with the rows locked): what it stored can only survive in the table.
        holder.execute("LOCK TABLE settings IN ACCESS EXCLUSIVE MODE")
        assert post(port(cloud_webapp), cloud.inbound(message, NUMBER)) == 200
        cloud_webapp.roles["webapp"].signal(signal.SIGKILL)
        assert cloud_webapp.roles["webapp"].wait(10) is not None
        assert [relayed for _, relayed in stored(cloud_webapp)] == [False]
        holder.rollback()
    assert bodies() == []
    cloud_webapp.start_webapp("webapp2")
    eventually(lambda: [m["id"] for b in bodies() for m in b.get("messages", [])] == [message["id"]], 60,
               what="the message relayed by the other webapp",
               details=lambda: cloud_webapp.roles["webapp2"].output()[-2000:])
    assert stored(cloud_webapp) == [(f"message:{message['id']}", True)]


def insert_message(cluster: LocalCluster, message_id: str, status: str, send_started: bool,
                   wamid: str | None = None) -> None:
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO messages (id, recipient, route_hash, shard, body, status, claimed_by, claimed_epoch, "
            "claim_session, claimed_at, send_started_at, wamid) VALUES (%s, '+15557000001', 1, 0, '{}', %s, "
            "'wacore1', 3, 's1', now(), CASE WHEN %s THEN now() END, %s)", (message_id, status, send_started, wamid))


def status_payload(message_id: str, wamid: str, status: str, **fields) -> dict:
    return cloud.envelope({"statuses": [{"id": wamid, "status": status, "timestamp": str(int(time.time())),
                                         "recipient_id": "15557000001", "biz_opaque_callback_data": message_id,
                                         **fields}]}, NUMBER)


def rows(cluster: LocalCluster) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in cluster.query("SELECT id, status, wamid, delivered_by FROM messages")}


def test_a_status_webhook_settles_a_send_in_doubt_and_nothing_else(cloud_webapp, receiver):
    cloud_webapp.configure(webhook_url=receiver, webhook_message={"sent": True})  # `sent` is opt-in
    insert_message(cloud_webapp, "in-doubt-sent", "claimed", send_started=True)
    insert_message(cloud_webapp, "in-doubt-failed", "claimed", send_started=True)
    insert_message(cloud_webapp, "claimed-not-started", "claimed", send_started=False)
    insert_message(cloud_webapp, "already-delivered", "delivered", send_started=True, wamid="wamid.KNOWN")
    payloads = [status_payload("in-doubt-sent", "wamid.SENT", "sent"),
                status_payload("in-doubt-failed", "wamid.FAILED", "failed", errors=[
                    {"code": 131026, "title": "Message undeliverable", "error_data": {"details": "not on WhatsApp"}}]),
                status_payload("claimed-not-started", "wamid.ODD", "delivered"),
                status_payload("already-delivered", "wamid.OTHER", "read")]
    for payload in payloads:
        assert post(port(cloud_webapp), payload) == 200
    eventually(lambda: len(bodies()) == 4, 30, what="the four statuses at the receiver")
    assert rows(cloud_webapp) == {"in-doubt-sent": ("delivered", "wamid.SENT", "wacore1"),
                                  "in-doubt-failed": ("failed", "wamid.FAILED", None),
                                  "claimed-not-started": ("claimed", None, None),
                                  "already-delivered": ("delivered", "wamid.KNOWN", None)}
    by_id = {b["statuses"][0]["id"]: b["statuses"][0] for b in bodies()}
    assert set(by_id) == {"in-doubt-sent", "in-doubt-failed", "claimed-not-started", "already-delivered"}
    assert by_id["in-doubt-failed"]["errors"][0]["code"] == 1013
    assert "settled it delivered" in cloud_webapp.roles["webapp"].output()


def test_a_status_for_a_row_another_transaction_holds_waits_its_turn_without_holding_up_the_relay(
        cloud_webapp, receiver):
    """A new owner's backlog reclaiming rows (many, in its own order) while the relay settled
    them one by one in one transaction deadlocked, and the reclaim held the shard map's row
    meanwhile: the owner's lease ran out (bench/cloud_failover.py, one run in 15)."""
    cloud_webapp.configure(webhook_url=receiver)
    insert_message(cloud_webapp, "in-doubt", "claimed", send_started=True)
    with psycopg.connect(cloud_webapp.dsn) as reclaimer:
        reclaimer.execute("SELECT id FROM messages WHERE id = 'in-doubt' FOR UPDATE")
        assert post(port(cloud_webapp), status_payload("in-doubt", "wamid.SENT", "delivered")) == 200
        time.sleep(1.5)  # the relay has met the held row
        message = cloud.message("text", body="relayed meanwhile")
        assert post(port(cloud_webapp), cloud.inbound(message, NUMBER)) == 200
        eventually(lambda: any(m["id"] == message["id"] for b in bodies() for m in b.get("messages", [])), 15,
                   what="the next notification relayed while the row is held")
        assert rows(cloud_webapp)["in-doubt"][0] == "claimed"
        reclaimer.rollback()
    eventually(lambda: rows(cloud_webapp)["in-doubt"] == ("delivered", "wamid.SENT", "wacore1"), 15,
               what="the status settling its send once the row is free")
    eventually(lambda: any(s["id"] == "in-doubt" for b in bodies() for s in b.get("statuses", [])), 15,
               what="its status at the receiver")


def test_a_sent_status_the_settings_turn_off_still_settles_its_send(cloud_webapp, receiver):
    cloud_webapp.configure(webhook_url=receiver)  # `sent` statuses are opt-in, as on-premises
    insert_message(cloud_webapp, "in-doubt", "claimed", send_started=True)
    assert post(port(cloud_webapp), status_payload("in-doubt", "wamid.SENT", "sent")) == 200
    assert post(port(cloud_webapp), status_payload("in-doubt", "wamid.SENT", "delivered")) == 200
    eventually(lambda: bodies(), 30, what="the delivered status at the receiver")
    assert rows(cloud_webapp)["in-doubt"] == ("delivered", "wamid.SENT", "wacore1")
    assert [b["statuses"][0]["status"] for b in bodies()] == ["delivered"]


def test_a_status_without_callback_data_is_keyed_by_our_id_through_the_stored_wamid(cloud_webapp, receiver):
    cloud_webapp.configure(webhook_url=receiver)
    insert_message(cloud_webapp, "ours", "delivered", send_started=True, wamid="wamid.STORED")
    payload = status_payload("ours", "wamid.STORED", "read")
    del payload["entry"][0]["changes"][0]["value"]["statuses"][0]["biz_opaque_callback_data"]
    assert post(port(cloud_webapp), payload) == 200
    eventually(lambda: bodies(), 30, what="the status at the receiver")
    [body] = bodies()
    assert body["statuses"][0]["id"] == "ours" and body["statuses"][0]["status"] == "read"


def test_a_killed_owners_sends_in_doubt_are_settled_by_status_webhooks_and_not_resent(cluster, receiver):
    """The Cloud driver's failover (test_cloud_delivery) with the webhooks flowing: the sends in
    flight when their owner is SIGKILLed complete at Meta, whose `sent` statuses reach a webapp;
    the new owner finds them settled inside its in-doubt window and sends none of them again."""
    with LocalCloud() as served:
        cluster.configure(webhook_url=receiver)
        cluster.webapp_env = {**cloud_env(), Env.CLOUD_APP_SECRET: served.api.app_secret}
        ports = start_cloud_cluster(cluster, served, coreapps=2, masters=2, args=("--cloud-in-doubt-window", "120"))
        api = webapp(cluster)
        served.api.webhook_url = f"https://127.0.0.1:{cluster.roles['webapp'].port}{PATH}"
        served.api.webhook_verify_tls = False  # the webapp's self-signed certificate
        served.api.auto_statuses = ("sent", "delivered")
        owner = connected(cluster)[0][0]
        successor = "wacore2" if owner == "wacore1" else "wacore1"
        served.fault(count=10, latency=3.0)  # in flight when the owner dies
        ids = [api.send_text(f"+1555760{n:04d}", f"failover {n}").body["messages"][0]["id"] for n in range(20)]
        eventually(lambda: cluster.query("SELECT count(*) FROM messages WHERE send_started_at IS NOT NULL "
                                         "AND status = 'claimed'")[0][0] >= 5, 30, what="sends in flight")
        in_doubt = {r[0] for r in cluster.query("SELECT id FROM messages WHERE status = 'claimed' "
                                                "AND send_started_at IS NOT NULL")}
        cluster.roles[owner].signal(signal.SIGKILL)
        # Well inside the 120 s window: settled by the webhooks, not by the window running out.
        eventually(lambda: set(dict(cluster.query("SELECT id, status FROM messages WHERE id = ANY(%s)",
                                                  (ids,))).values()) == {"delivered"}, 60,
                   what="every message delivered", details=lambda: cluster.roles["webapp"].output()[-2000:])
        assert served.api.duplicates() == {} and set(served.api.counts()) == set(ids)
        assert metric(ports[successor], "wacluster_cloud_in_doubt_resent_total") == 0
        settled = cluster.roles["webapp"].output().count("a Cloud status webhook settled it delivered")
        print(f"in doubt at the kill: {len(in_doubt)}; settled by status webhooks: {settled}; resent: 0")
        assert settled >= 1
        wamids = dict(cluster.query("SELECT id, wamid FROM messages WHERE id = ANY(%s)", (list(in_doubt),)))
        assert all(wamids[i] == served.api.find(callback_data=i).wamid for i in in_doubt)
        eventually(lambda: {s["id"] for b in bodies() for s in b.get("statuses", [])
                            if s["status"] == "delivered"} >= in_doubt, 30,
                   what="the delivered statuses at the business, under our ids")


def control(cloud: LocalCloud, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"{cloud.base}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def ids(payloads: list[dict]) -> set[str]:
    return {p["entry"][0]["changes"][0]["value"]["messages"][0]["id"] for p in payloads}


def test_the_local_cloud_apis_inbound_messages_arrive_only_when_rightly_signed(cloud_webapp, receiver):
    cloud_webapp.configure(webhook_url=receiver)
    with LocalCloud(phone_number_id=NUMBER) as served:
        assert served.api.app_secret == SECRET
        control(served, "/_control/config", {"webhook_url": f"https://127.0.0.1:{port(cloud_webapp)}{PATH}",
                                             "webhook_verify_tls": False})
        signed = [control(served, "/_control/inbound", {"type": kind})["queued"] for kind in cloud.TYPES]
        refused = [control(served, "/_control/inbound", {"type": "text", "signing": signing})["queued"]
                   for signing in ("wrongly_signed", "unsigned")]
        eventually(lambda: len(served.api.webhook_deliveries) == len(signed) + 2
                   and all(d["status"] is not None for d in served.api.webhook_deliveries), 30,
                   what="every webhook answered")
        assert {d["signing"]: d["status"] for d in served.api.webhook_deliveries} == {
            "signed": 200, "wrongly_signed": 401, "unsigned": 401}
        eventually(lambda: {m["id"] for b in bodies() for m in b.get("messages", [])} == ids(signed), 30,
                   what="the rightly signed messages at the business")
        assert not ids(refused) & {key.removeprefix("message:") for key, _ in stored(cloud_webapp)}
