"""One on-premises message body of every type and form (media by id and by link, a reply, every
template parameter kind, the legacy hsm), as a client sends it to POST /v1/messages. The Cloud API
tests map each through domain/cloud_messages.py. Kept in tests/integration, which is on pytest's
pythonpath, so the unit and the integration suites import the same corpus."""

from __future__ import annotations

from typing import Any

from wacluster.api.messages import OutgoingMessage

TO = "16315551234"
MEDIA_ID = "0123456789abcdef0123456789abcdef"   # our id, from POST /v1/media

BODIES: dict[str, dict[str, Any]] = {
    "text": {"to": TO, "type": "text", "preview_url": True, "text": {"body": "see https://example.com"}},
    "text by default": {"to": "+" + TO, "text": {"body": "hi"}},
    "reply": {"to": TO, "context": {"message_id": "wamid.HBgLMTYzMTU1NTEyMzQVAgASGBQzQTRB"},
              "text": {"body": "answer"}},
    "image by id": {"to": TO, "type": "image", "image": {"id": MEDIA_ID, "caption": "a"}},
    "image by link": {"to": TO, "type": "image", "image": {"link": "https://example.com/a.jpg"}},
    "audio": {"to": TO, "type": "audio", "audio": {"id": MEDIA_ID}},
    "video with provider": {"to": TO, "type": "video",
                            "video": {"link": "https://example.com/v.mp4", "caption": "v", "provider": {"name": "cdn"}}},
    "document": {"to": TO, "type": "document",
                 "document": {"id": MEDIA_ID, "caption": "c", "filename": "report.pdf"}},
    "sticker": {"to": TO, "type": "sticker", "sticker": {"link": "https://example.com/s.webp"}},
    "location": {"to": TO, "type": "location", "location": {"longitude": -122.425332, "latitude": 37.758056,
                                                            "name": "HQ", "address": "1 Hacker Way"}},
    "contacts": {"to": TO, "type": "contacts", "contacts": [{
        "name": {"formatted_name": "John Smith", "first_name": "John", "last_name": "Smith"},
        "birthday": "2012-08-18",
        "addresses": [{"street": "1 Hacker Way", "city": "Menlo Park", "country_code": "us", "type": "WORK"}],
        "emails": [{"email": "j@example.com", "type": "WORK"}],
        "org": {"company": "WhatsApp", "department": "Design", "title": "Manager"},
        "phones": [{"phone": "+1 (650) 555-1234", "type": "WORK", "wa_id": "16505551234"}],
        "urls": [{"url": "https://example.com", "type": "WORK"}]}]},
    "interactive button": {"to": TO, "type": "interactive", "interactive": {
        "type": "button", "header": {"type": "image", "image": {"id": MEDIA_ID}},
        "body": {"text": "pick"}, "footer": {"text": "thanks"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "1", "title": "Yes"}},
                               {"type": "reply", "reply": {"id": "2", "title": "No"}}]}}},
    "interactive list": {"to": TO, "type": "interactive", "interactive": {
        "type": "list", "header": {"type": "text", "text": "Menu"}, "body": {"text": "pick"},
        "action": {"button": "Menu", "sections": [{"title": "s", "rows": [
            {"id": "1", "title": "Row", "description": "d"}]}]}}},
    "interactive product": {"to": TO, "type": "interactive", "interactive": {
        "type": "product", "body": {"text": "look"},
        "action": {"catalog_id": "123", "product_retailer_id": "sku-1"}}},
    "interactive product_list": {"to": TO, "type": "interactive", "interactive": {
        "type": "product_list", "header": {"type": "text", "text": "Our range"}, "body": {"text": "look"},
        "action": {"catalog_id": "123", "sections": [{"title": "s",
                                                      "product_items": [{"product_retailer_id": "sku-1"}]}]}}},
    "template": {"to": TO, "type": "template", "ttl": 86400, "template": {
        "namespace": "ns", "name": "order", "language": {"policy": "deterministic", "code": "en_US"},
        "components": [
            {"type": "header", "parameters": [{"type": "document", "document": {"id": MEDIA_ID,
                                                                                 "filename": "d.pdf"}}]},
            {"type": "body", "parameters": [
                {"type": "text", "text": "Chef"},
                {"type": "currency", "currency": {"fallback_value": "$1", "code": "USD", "amount_1000": 1000}},
                {"type": "date_time", "date_time": {"fallback_value": "today", "timestamp": 1485470276}},
                {"type": "date_time", "date_time": {"fallback_value": "Feb 2024",
                                                    "component": {"year": 2024, "month": 2}}}]},
            {"type": "footer"},
            {"type": "button", "sub_type": "quick_reply", "index": 0,
             "parameters": [{"type": "payload", "payload": "p"}]},
            {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "x"}]}]}},
    "template with media headers": {"to": TO, "type": "template", "template": {
        "namespace": "ns", "name": "promo", "language": {"code": "pt_BR"},
        "components": [{"type": "header", "parameters": [{"type": "video", "video": {"link": "https://example.com/v.mp4"}}]}]}},
    "hsm": {"to": "+" + TO, "type": "hsm", "ttl": "P1D", "hsm": {
        "namespace": "ns", "element_name": "payment_due", "language": {"policy": "fallback", "code": "en"},
        "localizable_params": [{"default": "Jo"},
                               {"default": "$1.00", "currency": {"currency_code": "USD", "amount_1000": 1000}},
                               {"default": "1 Jan", "date_time": {"unix_epoch": {"timestamp": 1}}}]}},
    "hsm without params": {"to": TO, "type": "hsm", "hsm": {
        "namespace": "ns", "element_name": "hello", "language": {"code": "en"}}},
}


def stored(body: dict[str, Any]) -> dict[str, Any]:
    """The content as the webapp stores it (runtime/webapp/handlers.py): validated, defaults filled."""
    return OutgoingMessage.model_validate(body).model_dump(exclude_none=True)
