"""What the Cloud API's webhooks carry when a user writes to the business: one inbound message of
each type, in the shapes of Meta's webhook reference ("messages" field, v23.0), wrapped in the
webhook envelope. Used by the local Cloud API (cloudapi.py) and the tests of the translation."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from typing import Any

DEFAULT_USER = "16315551234"
# type -> the message's type object (media ids are the Cloud's numeric ids)
MEDIA = {"image": "image/jpeg", "audio": "audio/mpeg", "video": "video/mp4", "document": "application/pdf",
         "sticker": "image/webp", "voice": "audio/ogg; codecs=opus"}
TYPES = ("text", "image", "audio", "voice", "video", "document", "sticker", "location", "contacts",
         "interactive_button_reply", "interactive_list_reply", "button", "system", "reaction", "unsupported")


def wamid() -> str:
    return "wamid." + base64.urlsafe_b64encode(os.urandom(30)).decode()


def media_id() -> str:
    return str(secrets.randbelow(9 * 10 ** 15) + 10 ** 15)


def message(kind: str, sender: str = DEFAULT_USER, business: str = "15550783881", context_id: str | None = None,
            media: str | None = None, **fields) -> dict[str, Any]:
    """One inbound Cloud message of `kind` (one of TYPES); `media` names the media id to use."""
    m: dict[str, Any] = {"from": sender, "id": wamid(), "timestamp": str(int(time.time()))}
    if kind == "text":
        m |= {"type": "text", "text": {"body": fields.get("body", "hello from the Cloud API")}}
    elif kind in MEDIA:
        cloud_kind = "audio" if kind == "voice" else kind
        obj: dict[str, Any] = {"mime_type": MEDIA[kind], "sha256": hashlib.sha256(os.urandom(8)).hexdigest(),
                               "id": media or media_id()}
        if kind in ("image", "video", "document"):
            obj["caption"] = f"a {kind} from the Cloud API"
        if kind == "document":
            obj["filename"] = "cloud.pdf"
        if kind == "voice":
            obj["voice"] = True
        if kind == "sticker":
            obj["animated"] = False
        m |= {"type": cloud_kind, cloud_kind: obj}
    elif kind == "location":
        m |= {"type": "location", "location": {"latitude": 37.483872, "longitude": -122.148358,
                                                "name": "Meta HQ", "address": "1 Hacker Way, Menlo Park, CA 94025",
                                                "url": "https://example.com"}}
    elif kind == "contacts":
        m |= {"type": "contacts", "contacts": [{
            "name": {"formatted_name": "John Smith", "first_name": "John", "last_name": "Smith"},
            "phones": [{"phone": "+1 (650) 555-1234", "type": "WORK", "wa_id": "16505551234"}]}]}
    elif kind in ("interactive_button_reply", "interactive_list_reply"):
        reply = kind.removeprefix("interactive_")
        chosen = {"id": "0", "title": "BUTTON1"} if reply == "button_reply" else {
            "id": "0", "title": "ROW1", "description": "the first row"}
        m |= {"type": "interactive", "interactive": {"type": reply, reply: chosen},
              "context": {"from": business, "id": context_id or wamid()}}
    elif kind == "button":
        m |= {"type": "button", "button": {"payload": "yes-payload", "text": "Yes"},
              "context": {"from": business, "id": context_id or wamid()}}
    elif kind == "system":
        m |= {"type": "system", "system": {"body": f"User A changed from {sender} to 16315550000",
                                           "wa_id": "16315550000", "type": "customer_changed_number"}}
    elif kind == "reaction":
        m |= {"type": "reaction", "reaction": {"message_id": context_id or wamid(), "emoji": "\U0001F44D"}}
    elif kind == "unsupported":
        m |= {"type": "unsupported", "errors": [{
            "code": 131051, "title": "Message type unknown", "message": "Message type unknown",
            "error_data": {"details": "Message type is currently not supported."}}]}
    else:
        raise ValueError(f"kind must be one of {', '.join(TYPES)}")
    return m


def envelope(value: dict[str, Any], phone_number_id: str, display_phone_number: str = "15550783881",
             waba_id: str = "102290129340398") -> dict[str, Any]:
    """A webhook body carrying one change `value` (messages, statuses or errors)."""
    return {"object": "whatsapp_business_account", "entry": [{"id": waba_id, "changes": [{
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": display_phone_number, "phone_number_id": phone_number_id},
                  **value},
        "field": "messages"}]}]}


def inbound(m: dict[str, Any], phone_number_id: str, name: str = "Cloud User") -> dict[str, Any]:
    """The webhook body of one inbound message with its sender's contact (none for system ones)."""
    value: dict[str, Any] = {"messages": [m]}
    if m["type"] != "system":
        value = {"contacts": [{"profile": {"name": name}, "wa_id": m["from"]}], **value}
    return envelope(value, phone_number_id)
