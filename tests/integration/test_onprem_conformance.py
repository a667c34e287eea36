"""An existing on-premises client, unchanged, against a running cluster: the request sequence of a
courier-like integration (RapidPro's `whatsapp_legacy` channel, CRMs): log in, configure the
application settings with a webhook, check contacts, then send every kind of message it sends.
Each answer must have the on-premises shape (ids, `meta`) and each message must reach the WhatsApp
server (the sandbox) with its type and content as sent."""

from __future__ import annotations

import pytest

from wacluster import __version__
from runtime_cluster import connected, start, webapp
from wacluster_testenv.eventually import eventually
from wacluster_testenv.processes import free_port

pytestmark = pytest.mark.integration

META = {"api_status": "stable", "version": __version__}
TO = "250788123123"  # courier sends the URN's path: digits, no plus


def documented_settings(webhook_url: str) -> dict:
    """Every field the on-premises reference documents for PATCH /v1/settings/application."""
    return {
        "on_call_pager": "1234567890-1555555555@g.us",
        "pass_through": False,
        "sent_status": True,
        "callback_persist": True,
        "callback_backoff_delay_ms": 3000,
        "max_callback_backoff_delay_ms": "900000",  # the reference's example sends a string
        "heartbeat_interval": 5,
        "unhealthy_interval": 30,
        "media": {"auto_download": ["image", "document", "audio", "voice", "video", "sticker"]},
        "webhooks": {"url": webhook_url, "max_concurrent_requests": 12,
                     "message": {"sent": True, "delivered": True, "read": False}},
        "notify_user_change_number": True,
        "show_security_notifications": True,
        "db_garbagecollector_enable": True,
        "garbagecollector_enable": {"media": False, "messages": True},
        "skip_referral_media_download": False,
        "axolotl_context_striping_disabled": False,
        "webhook_payload_conversation_pricingmodel_disabled": False,
    }


def outgoing_messages(document_id: str) -> list[dict]:
    """The bodies such clients POST to /v1/messages (courier's whatsapp_legacy handler and the
    on-premises reference's examples)."""
    return [
        {"to": TO, "type": "text", "preview_url": True, "text": {"body": "Link Sending https://link.com"}},
        {"to": TO, "recipient_type": "individual", "type": "text", "text": {"body": "Simple Message"}},
        {"to": TO, "type": "image", "image": {"link": "https://foo.bar/image.jpg", "caption": "document caption"}},
        {"to": TO, "type": "document", "document": {"id": document_id, "caption": "document caption",
                                                    "filename": "document2.pdf"}},
        {"to": TO, "type": "audio", "audio": {"link": "https://foo.bar/audio.mp3"}},
        {"to": TO, "type": "sticker", "sticker": {"link": "https://foo.bar/sticker.webp"}},
        {"to": TO, "type": "template", "template": {
            "namespace": "waba_namespace", "name": "revive_issue",
            "language": {"policy": "deterministic", "code": "en_US"},
            "components": [
                {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://foo.bar/h.jpg"}}]},
                {"type": "body", "parameters": [
                    {"type": "text", "text": "Chef"},
                    {"type": "currency", "currency": {"fallback_value": "$100.99", "code": "USD",
                                                      "amount_1000": 100990}},
                    {"type": "date_time", "date_time": {"fallback_value": "February 25, 1977", "day_of_week": 5,
                                                        "year": 1977, "month": 2, "day_of_month": 25,
                                                        "hour": 15, "minute": 33, "calendar": "GREGORIAN"}}]},
                {"type": "button", "sub_type": "quick_reply", "index": "0",
                 "parameters": [{"type": "payload", "payload": "yes-payload"}]},
                {"type": "button", "sub_type": "url", "index": "1",
                 "parameters": [{"type": "text", "text": "order/123"}]}]}},
        {"to": TO, "type": "template", "template": {
            "namespace": "waba_namespace", "name": "revive_issue",
            "language": {"policy": "deterministic", "code": "en"}, "components": [{"type": "body"}]}},
        {"to": TO, "type": "hsm", "ttl": 86400, "hsm": {
            "namespace": "waba_namespace", "element_name": "payment_due",
            "language": {"policy": "fallback", "code": "en"},
            "localizable_params": [
                {"default": "Chef"},
                {"default": "$100.99", "currency": {"currency_code": "USD", "amount_1000": 100990}},
                {"default": "February 25, 1977", "date_time": {"component": {
                    "day_of_week": 5, "day_of_month": 25, "year": 1977, "month": 2, "hour": 15, "minute": 33}}},
                {"default": "January 26, 2017", "date_time": {"unix_epoch": {"timestamp": 1485470276}}}]}},
        {"to": TO, "type": "location", "location": {"longitude": -122.425332, "latitude": 37.758056,
                                                    "name": "Facebook HQ", "address": "1 Hacker Way"}},
        {"to": TO, "type": "contacts", "contacts": [{
            "addresses": [{"street": "1 Hacker Way", "city": "Menlo Park", "state": "CA", "zip": "94025",
                           "country": "United States", "country_code": "us", "type": "HOME"}],
            "birthday": "2012-08-18",
            "emails": [{"email": "test@fb.com", "type": "WORK"}],
            "name": {"formatted_name": "John Smith", "first_name": "John", "last_name": "Smith",
                     "middle_name": "D.", "suffix": "Jr", "prefix": "Dr"},
            "org": {"company": "WhatsApp", "department": "Design", "title": "Manager"},
            "phones": [{"phone": "+1 (940) 555-1234", "type": "HOME"},
                       {"phone": "+1 (650) 555-1234", "type": "WORK", "wa_id": "16505551234"}],
            "urls": [{"url": "https://www.facebook.com", "type": "WORK"}]}]},
        {"to": TO, "type": "interactive", "interactive": {
            "type": "button", "body": {"text": "Interactive Button Msg"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "0", "title": "BUTTON1"}}]}}},
        {"to": TO, "type": "interactive", "interactive": {
            "type": "list", "header": {"type": "text", "text": "Menu"}, "body": {"text": "Interactive List Msg"},
            "footer": {"text": "pick one"},
            "action": {"button": "Menu", "sections": [{"title": "rows", "rows": [
                {"id": "0", "title": "ROW1"}, {"id": "1", "title": "ROW2", "description": "the second"}]}]}}},
    ]


def test_a_courier_like_client_runs_its_sequence_unchanged(cluster):
    start(cluster)
    api = webapp(cluster)
    eventually(lambda: connected(cluster), 30, what="shard 0 served")

    webhook_url = f"http://127.0.0.1:{free_port()}/whatsapp"
    reply = api.request("PATCH", "/v1/settings/application", documented_settings(webhook_url))
    assert reply.status == 200, reply.body
    assert reply.body["meta"] == META
    application = api.request("GET", "/v1/settings/application").body["settings"]["application"]
    expected = {**documented_settings(webhook_url), "max_callback_backoff_delay_ms": 900000}
    assert {k: application[k] for k in expected} == expected

    reply = api.request("POST", "/v1/contacts", {"blocking": "wait", "contacts": ["+250 788 123-123", "+1 555-010-0000"],
                                                 "force_check": True})
    assert reply.status == 200, reply.body
    assert reply.body == {"contacts": [{"input": "+250 788 123-123", "status": "valid", "wa_id": TO},
                                       {"input": "+1 555-010-0000", "status": "invalid"}], "meta": META}

    upload = api.request("POST", "/v1/media", raw=b"%PDF-1.4 a document", content_type="application/pdf")
    assert upload.status == 201, upload.body
    sent = {}
    for body in outgoing_messages(upload.body["media"][0]["id"]):
        reply = api.request("POST", "/v1/messages", body)
        assert reply.status == 201, (body["type"], reply.body)
        assert set(reply.body) == {"messages", "meta"} and reply.body["meta"] == META
        [message] = reply.body["messages"]
        assert message["id"].startswith("wamid.")
        sent[message["id"]] = body

    def arrived():
        deliveries = {d["id"]: d for d in cluster.gateway("/inspect/deliveries")["deliveries"]}
        return set(sent) <= set(deliveries) and deliveries

    deliveries = eventually(arrived, 30, what="every message at the WhatsApp server")
    for message_id, body in sent.items():
        delivered = deliveries[message_id]
        assert delivered["type"] == body["type"]
        assert delivered["body"][body["type"]] == body[body["type"]], body["type"]


def test_contact_checks_are_cached_for_seven_days_and_no_wait_answers_processing(cluster):
    api = webapp(cluster)

    def check(*numbers, blocking="wait", force=False):
        reply = api.request("POST", "/v1/contacts", {"blocking": blocking, "contacts": list(numbers),
                                                     "force_check": force})
        assert reply.status == 200 and reply.body["meta"] == META, reply.body
        return [(c["status"], c.get("wa_id")) for c in reply.body["contacts"]]

    def asked() -> int:
        return cluster.gateway()["contact_checks"]

    assert check("+1 (631) 555-1001", blocking="no_wait") == [("processing", None)]
    eventually(lambda: check("16315551001", blocking="no_wait") == [("valid", "16315551001")], 30,
               what="the queued check answered from the cache")
    assert asked() == 1
    assert check("1-631-555-1001", "call me maybe") == [("valid", "16315551001"), ("invalid", None)]
    assert asked() == 1, "a number checked within 7 days is answered from the cache"
    assert check("+1 631 555 1001", force=True) == [("valid", "16315551001")]
    assert asked() == 2, "force_check asks again"
    cluster.query("UPDATE contacts SET checked_at = now() - interval '7 days 1 minute' RETURNING number")
    assert check("+16315551001") == [("valid", "16315551001")]
    assert asked() == 3, "a check older than 7 days is made again"

    missing = api.request("POST", "/v1/contacts", {"blocking": "wait"})
    assert missing.status == 400 and missing.body["meta"] == META
    assert missing.error["code"] == 1008 and "contacts" in missing.error["details"]
