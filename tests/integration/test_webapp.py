"""The webapp as a real process in front of real masters, coreapps, sandbox and PostgreSQL."""

from __future__ import annotations

import http.server
import json
import signal
import threading

import pytest

from wacluster.runtime.sandbox import registration_code
from runtime_cluster import PASSWORD, stop_masters_and_await_renewal_without_them
from runtime_cluster import webapp as api_for
from wacluster_testenv.apiclient import ApiClient
from wacluster_testenv.eventually import eventually

pytestmark = pytest.mark.integration


def roles_in(health: dict) -> dict[str, dict]:
    return {key.split(":")[0]: value for key, value in health.items()}


def register(api: ApiClient, cc="1", number="5550001111") -> None:
    assert api.request("POST", "/v1/account", {"cc": cc, "phone_number": number, "method": "sms",
                                               "cert": "Y2VydA=="}).status == 202
    reply = api.request("POST", "/v1/account/verify", {"code": registration_code(f"+{cc}{number}")})
    assert reply.status == 201, reply.body


def connected_coreapps(api: ApiClient) -> set[str]:
    return {name for name, v in roles_in(api.health()).items()
            if v.get("role") == "coreapp" and v.get("gateway_status") == "connected"}


def test_seed_001_walkthrough(cluster):
    for name in ("master1", "master2"):
        cluster.start_master(name)
    for name in ("wacore1", "wacore2"):
        cluster.start_coreapp(name)
    api = api_for(cluster)
    health = eventually(lambda: (h := roles_in(api.health())) and len(h) == 4 and
                        any(v.get("role") == "primary_master" for v in h.values()) and h, 30,
                        what="health listing 2 masters and 2 coreapps with a primary")
    primary = [n for n, v in health.items() if v.get("role") == "primary_master"]
    assert len(primary) == 1 and health[primary[0]]["gateway_status"] == "unregistered"
    assert health["wacore1"]["errors"][0]["code"] == 1011

    register(api)
    eventually(lambda: len(connected_coreapps(api)) == 1, 30, what="one coreapp connected")

    reply = api.request("POST", "/v1/account/shards", {"cc": "1", "phone_number": "5550001111", "shards": 2})
    assert reply.status == 201, reply.body
    eventually(lambda: len(connected_coreapps(api)) == 2, 30, what="two coreapps connected")
    health = roles_in(api.health())
    primary = [v for v in health.values() if v.get("role") == "primary_master"][0]
    assert primary["gateway_status"] == "connected"

    cluster.start_coreapp("wacore3")
    eventually(lambda: roles_in(api.health()).get("wacore3", {}).get("gateway_status") == "disconnected", 30,
               what="wacore3 listed as a disconnected standby")
    victim = sorted(connected_coreapps(api))[0]
    cluster.roles[victim].signal(signal.SIGKILL)
    eventually(lambda: "wacore3" in connected_coreapps(api) and len(connected_coreapps(api) - {victim}) == 2, 30,
               what="the standby connected and 2 shards connected")


def start_ha(cluster, coreapps=2, api: ApiClient | None = None) -> ApiClient:
    for name in ("master1", "master2"):
        cluster.start_master(name)
    for i in range(1, coreapps + 1):
        cluster.start_coreapp(f"wacore{i}")
    api = api or api_for(cluster)
    register(api)
    eventually(lambda: len(connected_coreapps(api)) == 1, 30, what="one coreapp connected")
    return api


def test_every_accepted_message_is_delivered_exactly_once_through_a_failover(cluster):
    api = start_ha(cluster)
    accepted, failed = [], []
    sending = threading.Event()
    sending.set()

    def sender():
        i = 0
        while sending.is_set() and i < 2000:
            reply = api.send_text(f"+1555400{i:04d}", f"steady {i}")
            (accepted if reply.status == 201 else failed).append(reply)
            i += 1

    thread = threading.Thread(target=sender)
    thread.start()
    try:
        eventually(lambda: len(accepted) >= 10, 30, what="messages accepted before the kill")
        owner = sorted(connected_coreapps(api))[0]
        cluster.roles[owner].signal(signal.SIGKILL)
        eventually(lambda: connected_coreapps(api) - {owner}, 60, what="the standby connected")
        before = len(accepted)
        eventually(lambda: len(accepted) >= before + 10, 30, what="messages accepted after the failover")
    finally:
        sending.clear()
        thread.join()
    ids = [r.body["messages"][0]["id"] for r in accepted]
    assert ids and len(ids) == len(set(ids))
    eventually(lambda: set(ids) <= {d["id"] for d in cluster.gateway("/inspect/deliveries")["deliveries"]}, 20,
               what="every accepted message delivered")
    report = cluster.gateway("/inspect")
    assert report["conflicts"] == 0 and report["bans"] == 0
    assert all(r.status == 503 and r.headers.get("Retry-After") for r in failed)


def test_messages_route_and_health_answers_with_every_master_down(cluster):
    api = start_ha(cluster)
    stop_masters_and_await_renewal_without_them(cluster)
    replies = [api.send_text(f"+1555500{i:04d}", "no masters") for i in range(10)]
    assert all(r.status == 201 for r in replies)
    health = roles_in(api.health())
    assert sum(1 for v in health.values() if v.get("gateway_status") == "connected") == 1


def test_login_and_token_paths(cluster):
    api = api_for(cluster, token_ttl=2)
    assert api.request("GET", "/v1/health", auth=False).status == 401
    assert ApiClient(api.base_url).login("admin", "wrong").status == 401
    bad = api.request("GET", "/v1/health", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status == 401 and bad.error["code"] == 1005 and "log in again" in bad.error["details"]
    assert api.request("GET", "/v1/health").status == 200
    # Expires after 2 s; a webapp may keep a token it checked in its positive cache for 10 s more.
    expired = eventually(lambda: (r := api.request("GET", "/v1/health")).status == 401 and r, 60,
                         interval=0.5, what="the 2 s token refused")
    assert expired.error["code"] == 1005


def test_settings_are_validated_and_applied(cluster):
    api = api_for(cluster)
    ok = api.request("PATCH", "/v1/settings/application", {"heartbeat_interval": 2, "unhealthy_interval": 5})
    assert ok.status == 200 and ok.body["settings"]["application"]["heartbeat_interval"] == 2
    assert cluster.query("SELECT value FROM settings WHERE key = 'unhealthy_interval'") == [(5,)]
    for bad, why in [({"heartbeat_interval": 10}, "twice"), ({"heartbeat_interval": 0}, "greater than or equal"),
                     ({"color": "blue"}, "Extra inputs"), ({"webhooks": {"url": "not a url"}}, "webhooks.url")]:
        reply = api.request("PATCH", "/v1/settings/application", bad)
        assert reply.status == 400 and why in reply.error["details"], (bad, reply.body)


def test_media_round_trip_and_limits(cluster):
    api = api_for(cluster, media_max_bytes=1024)
    reply = api.request("POST", "/v1/media", raw=b"\x89PNG fake image", content_type="image/png")
    assert reply.status == 201
    media_id = reply.body["media"][0]["id"]
    back = api.request("GET", f"/v1/media/{media_id}")
    assert back.status == 200 and back.raw == b"\x89PNG fake image" and back.headers["Content-Type"] == "image/png"
    assert api.request("POST", "/v1/media", raw=b"x" * 2048, content_type="image/png").status == 413
    assert api.request("POST", "/v1/media", raw=b"#!/bin/sh", content_type="application/x-sh").status == 415
    assert api.request("GET", "/v1/media/..%2F..%2Fetc%2Fpasswd").status == 404
    assert api.request("GET", "/v1/media/" + "0" * 32).status == 404


def test_bad_input_gets_a_400_that_says_what_to_fix(cluster):
    api = api_for(cluster)
    cases = [
        (b"{not json", "not valid JSON"),
        (json.dumps({"to": "+15551234567", "type": "text", "text": {"body": 5}}).encode(), "text.body"),
        (json.dumps({"to": "+15551234567", "type": "text", "text": {"body": "hi"}, "extra": 1}).encode(), "extra"),
        (json.dumps({"to": "call me", "type": "text", "text": {"body": "hi"}}).encode(), "to"),
        (json.dumps({"to": "+15551234567", "type": "image", "image": {"id": "../../x"}}).encode(), "image.id"),
        (json.dumps([1, 2]).encode(), "JSON object"),
    ]
    for raw, why in cases:
        reply = api.request("POST", "/v1/messages", raw=raw)
        assert reply.status == 400 and reply.error["code"] == 1009 and why in reply.error["details"], (raw, reply.body)
        assert "Traceback" not in json.dumps(reply.body)
    # A required parameter that is absent is the on-premises API's 1008, not 1009.
    absent = api.request("POST", "/v1/messages", {"to": "+15551234567", "type": "image", "text": {"body": "hi"}})
    assert absent.status == 400 and absent.error["code"] == 1008 and "needs a 'image'" in absent.error["details"]
    big = api.request("POST", "/v1/messages", raw=b"{" + b" " * (70 * 1024) + b"}")
    assert big.status == 413
    assert api.request("GET", "/v1/nothing-here").status == 404
    shards = api.request("POST", "/v1/account/shards", {"cc": "1", "phone_number": "5550001111", "shards": 3})
    assert shards.status == 400 and "shards" in shards.error["details"]


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []
    failures_left = 2

    def do_POST(self):  # noqa: N802 (http.server naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Receiver.failures_left > 0:
            _Receiver.failures_left -= 1
            self.send_response(500)
        else:
            _Receiver.received.append(json.loads(body))
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhooks_are_retried_until_the_receiver_accepts(cluster):
    _Receiver.received, _Receiver.failures_left = [], 2
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = api_for(cluster)
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        assert api.request("PATCH", "/v1/settings/application", {"webhooks": {"url": url}}).status == 200
        start_ha(cluster, api=api)  # the coreapps start with the webhook already configured
        reply = api.send_text("+15556000001", "status please")
        assert reply.status == 201
        message_id = reply.body["messages"][0]["id"]
        eventually(lambda: any(s["id"] == message_id for e in _Receiver.received for s in e.get("statuses", [])),
                   60, what="the delivery status webhook")
        events = cluster.query("SELECT attempts FROM webhook_events WHERE payload::text LIKE %s AND delivered_at "
                               "IS NOT NULL", (f"%{message_id}%",))
        assert events == [(3,)]  # refused twice, accepted the third time
    finally:
        server.shutdown()
