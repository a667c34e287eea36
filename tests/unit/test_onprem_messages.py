"""The message bodies the on-premises API documents are accepted as sent; anything else is refused
naming the field, with 1008 when a required parameter is absent and 1009 when a value is wrong."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from wacluster.api.errors import describe_validation, validation_kind
from wacluster.api.rest import ApplicationSettings, ContactsRequest, OutgoingMessage

pytestmark = pytest.mark.unit

TO = "16315551234"

DOCUMENTED = {
    "text with preview": {"to": TO, "type": "text", "preview_url": True, "recipient_type": "individual",
                          "text": {"body": "see https://example.com"}},
    "text by default": {"to": TO, "text": {"body": "hi"}},
    "image by link": {"to": TO, "type": "image", "image": {"link": "https://example.com/a.jpg", "caption": "a"}},
    "image by on-prem uuid": {"to": TO, "type": "image", "image": {"id": "36c484d1-1283-4b94-988d-7276bdec4de2"}},
    "document by id": {"to": TO, "type": "document",
                       "document": {"id": "0" * 32, "caption": "c", "filename": "report.pdf"}},
    "audio": {"to": TO, "type": "audio", "audio": {"id": "f" * 32}},
    "video with provider": {"to": TO, "type": "video",
                            "video": {"link": "https://example.com/v.mp4", "provider": {"name": "cdn"}}},
    "sticker": {"to": TO, "type": "sticker", "sticker": {"link": "https://example.com/s.webp"}},
    "location": {"to": TO, "type": "location", "location": {"longitude": -122.4, "latitude": 37.7,
                                                            "name": "HQ", "address": "1 Hacker Way"}},
    "contacts": {"to": TO, "type": "contacts", "contacts": [{
        "name": {"formatted_name": "John Smith", "first_name": "John"}, "birthday": "2012-08-18",
        "addresses": [{"street": "1 Hacker Way", "city": "Menlo Park", "type": "WORK"}],
        "emails": [{"email": "j@example.com", "type": "WORK"}],
        "org": {"company": "WhatsApp", "department": "Design", "title": "Manager"},
        "phones": [{"phone": "+1 (650) 555-1234", "type": "WORK", "wa_id": "16505551234"}],
        "urls": [{"url": "https://example.com", "type": "WORK"}]}]},
    "interactive button": {"to": TO, "type": "interactive", "interactive": {
        "type": "button", "header": {"type": "image", "image": {"link": "https://example.com/h.png"}},
        "body": {"text": "pick"}, "footer": {"text": "thanks"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "1", "title": "Yes"}}]}}},
    "interactive list": {"to": TO, "type": "interactive", "interactive": {
        "type": "list", "body": {"text": "pick"},
        "action": {"button": "Menu", "sections": [{"title": "s", "rows": [{"id": "1", "title": "Row",
                                                                          "description": "d"}]}]}}},
    "interactive product": {"to": TO, "type": "interactive", "interactive": {
        "type": "product", "body": {"text": "look"},
        "action": {"catalog_id": "123", "product_retailer_id": "sku-1"}}},
    "interactive product_list": {"to": TO, "type": "interactive", "interactive": {
        "type": "product_list", "header": {"type": "text", "text": "Our range"}, "body": {"text": "look"},
        "action": {"catalog_id": "123", "sections": [{"title": "s",
                                                      "product_items": [{"product_retailer_id": "sku-1"}]}]}}},
    "template with every parameter type": {"to": TO, "type": "template", "ttl": 86400, "template": {
        "namespace": "ns", "name": "order", "language": {"policy": "deterministic", "code": "en_US"},
        "components": [
            {"type": "header", "parameters": [{"type": "document", "document": {"link": "https://example.com/d.pdf",
                                                                                 "filename": "d.pdf"}}]},
            {"type": "header", "parameters": [{"type": "video", "video": {"id": "a" * 32}}]},
            {"type": "body", "parameters": [
                {"type": "text", "text": "Chef"},
                {"type": "currency", "currency": {"fallback_value": "$1", "code": "USD", "amount_1000": 1000}},
                {"type": "date_time", "date_time": {"fallback_value": "today", "timestamp": 1485470276}},
                {"type": "date_time", "date_time": {"fallback_value": "today",
                                                    "component": {"year": 2024, "month": 2}}}]},
            {"type": "button", "sub_type": "quick_reply", "index": 0,
             "parameters": [{"type": "payload", "payload": "p"}]},
            {"type": "button", "sub_type": "url", "index": "2", "parameters": [{"type": "text", "text": "x"}]}]}},
    "hsm": {"to": "+" + TO, "type": "hsm", "hsm": {
        "namespace": "ns", "element_name": "payment_due", "language": {"policy": "fallback", "code": "en"},
        "localizable_params": [{"default": "a"},
                               {"default": "$1", "currency": {"currency_code": "USD", "amount_1000": 1000}},
                               {"default": "d", "date_time": {"unix_epoch": {"timestamp": 1}}}]}},
    "a reply": {"to": TO, "context": {"message_id": "wamid.abc"}, "text": {"body": "answer"}},
}


@pytest.mark.parametrize("body", DOCUMENTED.values(), ids=DOCUMENTED.keys())
def test_documented_message_bodies_are_accepted_and_kept_as_sent(body):
    kind = body.get("type", "text")
    assert OutgoingMessage.model_validate(body).model_dump(exclude_none=True)[kind] == body[kind]


def refusal(model, body) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return validation_kind(caught.value), describe_validation(caught.value)


@pytest.mark.parametrize("body, where", [
    ({"to": TO, "text": {"body": "hi"}, "priority": "high"}, "priority"),
    ({"to": TO, "type": "image", "image": {"link": "https://example.com/a", "mime": "x"}}, "image.mime"),
    ({"to": TO, "type": "template", "template": {"namespace": "n", "name": "t", "language": {"code": "en"},
                                                 "parameters": []}}, "template.parameters"),
    ({"to": TO, "type": "hsm", "hsm": {"namespace": "n", "element_name": "e", "language": {"code": "en"},
                                       "localizable_params": [{"default": "a", "colour": "red"}]}},
     "hsm.localizable_params.0.colour"),
])
def test_an_undocumented_field_is_refused_naming_it(body, where):
    kind, details = refusal(OutgoingMessage, body)
    assert kind == "bad_request" and f"{where}: Extra inputs are not permitted" in details


@pytest.mark.parametrize("body, why", [
    ({"to": TO, "type": "location"}, "needs a 'location'"),
    ({"to": TO, "type": "image", "image": {"caption": "no media"}}, "id (from POST /v1/media) or a link"),
    ({"to": TO, "type": "template", "template": {"namespace": "n", "language": {"code": "en"}}}, "template.name"),
    ({"to": TO, "type": "interactive", "interactive": {"type": "list", "body": {"text": "b"},
                                                       "action": {"button": "Menu"}}}, "action.sections"),
    ({"to": TO, "type": "template", "template": {"namespace": "n", "name": "t", "language": {"code": "en"},
                                                 "components": [{"type": "button", "parameters": []}]}},
     "sub_type and index"),
    ({"to": TO, "type": "template", "template": {"namespace": "n", "name": "t", "language": {"code": "en"},
                                                 "components": [{"type": "body", "parameters": [
                                                     {"type": "currency"}]}]}}, "needs a 'currency'"),
])
def test_an_absent_required_parameter_is_1008(body, why):
    kind, details = refusal(OutgoingMessage, body)
    assert kind == "missing" and why in details, details


@pytest.mark.parametrize("body, why", [
    ({"to": TO, "type": "image", "image": {"id": "a" * 32, "link": "https://example.com/a"}}, "not both"),
    ({"to": TO, "type": "image", "image": {"link": "ftp://example.com/a"}}, "image.link"),
    ({"to": TO, "type": "location", "location": {"longitude": 200, "latitude": 0}}, "location.longitude"),
    ({"to": TO, "recipient_type": "group", "text": {"body": "hi"}}, "recipient_type"),
    ({"to": TO, "type": "text", "text": {"body": "hi"}, "image": {"id": "a" * 32}}, "must not carry image"),
    ({"to": TO, "type": "template", "template": {"namespace": "n", "name": "t",
                                                 "language": {"policy": "random", "code": "en"}}}, "policy"),
])
def test_a_wrong_value_is_1009(body, why):
    kind, details = refusal(OutgoingMessage, body)
    assert kind == "bad_request" and why in details, details


def test_every_documented_application_setting_is_accepted():
    settings = ApplicationSettings.model_validate({
        "callback_persist": True, "callback_backoff_delay_ms": "3000", "max_callback_backoff_delay_ms": 900000,
        "media": {"auto_download": ["audio", "document", "voice", "video", "image", "sticker"]},
        "on_call_pager": "group-id", "pass_through": False, "sent_status": True, "heartbeat_interval": 5,
        "unhealthy_interval": 30, "webhooks": {"url": "https://example.com/hook", "max_concurrent_requests": 24,
                                               "message": {"sent": True, "delivered": True, "read": False}},
        "notify_user_change_number": True, "show_security_notifications": False,
        "db_garbagecollector_enable": True, "garbagecollector_enable": {"media": False, "messages": True},
        "skip_referral_media_download": True, "axolotl_context_striping_disabled": False,
        "webhook_payload_conversation_pricingmodel_disabled": False})
    assert settings.callback_backoff_delay_ms == 3000 and settings.webhooks.max_concurrent_requests == 24


def test_an_undocumented_setting_is_still_refused_naming_it():
    assert refusal(ApplicationSettings, {"sent_status": True, "colour": "blue"}) == (
        "bad_request", "colour: Extra inputs are not permitted")


def test_a_contacts_check_defaults_to_no_wait_without_force():
    request = ContactsRequest.model_validate({"contacts": ["+1 (631) 555-1004"]})
    assert (request.blocking, request.force_check) == ("no_wait", False)
    assert refusal(ContactsRequest, {"blocking": "wait"})[0] == "missing"
