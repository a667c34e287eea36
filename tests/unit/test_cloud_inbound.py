"""Cloud API webhook notifications become the on-premises webhook bodies the sandbox's inbound path
produces (runtime/sandbox_inbound.py): same keys, same nesting, statuses keyed by our ids."""

from __future__ import annotations

from typing import Any

import pytest

from wacluster.domain.cloud_inbound import (
    ERROR, MESSAGE, STATUS, notifications, onprem_error, onprem_webhook, send_outcome, wamids_to_resolve,
)
from wacluster.runtime.sandbox_inbound import message_payload, status_payload
from wacluster_testenv import cloudapi_inbound as cloud

pytestmark = pytest.mark.unit
NUMBER = "106540352242922"

# Cloud type (cloudapi_inbound.TYPES) -> (on-prem type, the sandbox's request for the same kind)
SAME_KIND = {"text": ("text", {}), "image": ("image", {}), "audio": ("audio", {}), "voice": ("voice", {}),
             "video": ("video", {}), "document": ("document", {}), "sticker": ("sticker", {}),
             "location": ("location", {}), "contacts": ("contacts", {}),
             "interactive_button_reply": ("interactive", {"reply": "button_reply"}),
             "interactive_list_reply": ("interactive", {"reply": "list_reply"}),
             "button": ("button", {}), "system": ("system", {}),
             "reaction": ("unknown", {}), "unsupported": ("unknown", {})}


def shape(value: Any) -> Any:
    """The keys and nesting of a JSON value, without the values themselves."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__ if isinstance(value, (bool, dict, list)) else "scalar"


def translate(payload: dict, our_ids: dict[str, str] | None = None) -> list[dict]:
    return [onprem_webhook(n, our_ids or {}) for n in notifications(payload, NUMBER)]


def test_every_cloud_type_has_an_onprem_counterpart_in_the_tests():
    assert set(SAME_KIND) == set(cloud.TYPES)


@pytest.mark.parametrize("kind", cloud.TYPES)
def test_each_inbound_type_has_the_shape_of_the_sandboxs_onprem_webhook(kind):
    m = cloud.message(kind)
    [body] = translate(cloud.inbound(m, NUMBER))
    onprem_kind, request = SAME_KIND[kind]
    sandbox = message_payload({"type": onprem_kind, "from": cloud.DEFAULT_USER, **request}, "15550783881", 0)
    assert shape(body) == shape(sandbox)
    [message] = body["messages"]
    assert (message["id"], message["from"], message["type"]) == (m["id"], m["from"], onprem_kind)
    if onprem_kind in ("image", "audio", "video", "document", "sticker", "voice"):
        assert message[onprem_kind]["id"] == m["audio" if kind == "voice" else kind]["id"]  # the Cloud media id


def test_a_reaction_or_unsupported_type_is_unknown_with_error_501_naming_it():
    [body] = translate(cloud.inbound(cloud.message("reaction"), NUMBER))
    [error] = body["messages"][0]["errors"]
    assert error["code"] == 501 and "reaction" in error["details"]
    [body] = translate(cloud.inbound(cloud.message("unsupported"), NUMBER))
    assert "131051" in body["messages"][0]["errors"][0]["details"]


def test_a_reply_names_our_id_of_the_message_it_replies_to():
    m = cloud.message("button", context_id="wamid.OURS")
    [n] = notifications(cloud.inbound(m, NUMBER), NUMBER)
    assert wamids_to_resolve(n) == ["wamid.OURS"]
    assert onprem_webhook(n, {"wamid.OURS": "gBEG-our-id"})["messages"][0]["context"]["id"] == "gBEG-our-id"
    assert onprem_webhook(n, {})["messages"][0]["context"]["id"] == "wamid.OURS"


def status(**fields) -> dict:
    item = {"id": "wamid.S1", "status": "delivered", "timestamp": "1700000000", "recipient_id": cloud.DEFAULT_USER,
            "conversation": {"id": "c0ffee", "origin": {"type": "utility"}, "expiration_timestamp": "1700086400"},
            "pricing": {"billable": True, "pricing_model": "PMP", "category": "utility", "type": "regular"}}
    return cloud.envelope({"statuses": [{**item, **fields}]}, NUMBER)


def test_a_status_is_keyed_by_our_id_from_the_callback_data_or_the_wamid_mapping():
    [by_callback] = translate(status(biz_opaque_callback_data="gBEG-ours"))
    assert by_callback["statuses"][0]["id"] == "gBEG-ours"
    [n] = notifications(status(), NUMBER)
    assert wamids_to_resolve(n) == ["wamid.S1"]
    assert onprem_webhook(n, {"wamid.S1": "gBEG-mapped"})["statuses"][0]["id"] == "gBEG-mapped"
    assert onprem_webhook(n, {})["statuses"][0]["id"] == "wamid.S1"  # not ours: the business sees the wamid


def test_a_status_has_the_shape_of_the_sandboxs_status():
    [body] = translate(status(biz_opaque_callback_data="gBEG-ours"))
    sandbox = status_payload({"id": "x", "status": "delivered"}, 0)
    assert set(body["statuses"][0]) == set(sandbox["statuses"][0])
    assert body["statuses"][0]["pricing"] == {"billable": True, "pricing_model": "PMP", "category": "utility"}
    assert body["statuses"][0]["conversation"]["origin"] == {"type": "utility"}


def test_a_failed_status_carries_onprem_error_codes():
    [body] = translate(status(status="failed", biz_opaque_callback_data="gBEG-ours", errors=[
        {"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message",
         "error_data": {"details": "Message failed to send because more than 24 hours have passed"}}]))
    [item] = body["statuses"]
    assert item["errors"][0]["code"] == 470 and "131047" in item["errors"][0]["details"]
    assert set(item) >= {"id", "recipient_id", "status", "timestamp", "errors"}
    assert send_outcome(body) == ("gBEG-ours", "failed")


@pytest.mark.parametrize("cloud_status, outcome", [("sent", "delivered"), ("delivered", "delivered"),
                                                   ("read", "delivered"), ("failed", "failed")])
def test_every_status_settles_a_send_of_ours(cloud_status, outcome):
    [body] = translate(status(status=cloud_status, biz_opaque_callback_data="gBEG-ours"))
    assert send_outcome(body) == ("gBEG-ours", outcome)


def test_errors_map_to_onprem_codes():
    assert onprem_error({"code": 131026, "title": "Message undeliverable"})["code"] == 1013
    assert onprem_error({"code": 132001, "title": "Template missing"})["code"] == 2001
    assert onprem_error({"code": 132015, "title": "Template paused"})["code"] == 2002
    unknown = onprem_error({"code": 131999, "message": "something new", "error_data": {"details": "why"}})
    assert unknown == {"code": 1000, "title": "Generic error", "details": "Cloud API error 131999: why"}
    [body] = translate(cloud.envelope({"errors": [{"code": 131000, "title": "Something went wrong"}]}, NUMBER))
    assert body == {"errors": [{"code": 1000, "title": "Generic error",
                                "details": "Cloud API error 131000: Something went wrong"}]}


def test_keys_tell_a_retry_from_a_new_notification():
    m = cloud.message("text")
    first, again = notifications(cloud.inbound(m, NUMBER), NUMBER), notifications(cloud.inbound(m, NUMBER), NUMBER)
    assert [n.key for n in first] == [n.key for n in again] == [f"message:{m['id']}"]
    assert notifications(status(status="read"), NUMBER)[0].key != notifications(status(), NUMBER)[0].key
    error = cloud.envelope({"errors": [{"code": 131000, "title": "x"}]}, NUMBER)
    assert notifications(error, NUMBER)[0].key == notifications(error, NUMBER)[0].key
    assert [n.kind for n in notifications(status(), NUMBER)] == [STATUS]
    assert [n.kind for n in notifications(error, NUMBER)] == [ERROR]
    assert [n.kind for n in first] == [MESSAGE]


def test_other_numbers_other_fields_and_malformed_bodies_give_nothing():
    m = cloud.message("text")
    assert notifications(cloud.inbound(m, "another-number"), NUMBER) == []
    assert len(notifications(cloud.inbound(m, "another-number"))) == 1  # no number configured: every number
    other_field = cloud.inbound(m, NUMBER)
    other_field["entry"][0]["changes"][0]["field"] = "account_update"
    assert notifications(other_field, NUMBER) == []
    for junk in (None, [], "x", {"object": "page"}, {"object": "whatsapp_business_account", "entry": "x"},
                 {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",
                                                                                  "value": {"messages": [1, {}]}}]}]}):
        assert notifications(junk) == []
