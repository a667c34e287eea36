"""Cloud API webhook notifications, split into the items a retry repeats and translated into the
on-premises webhook bodies a business's receiver already parses (the shapes the sandbox's
inbound path sends, runtime/sandbox_inbound.py).

A Cloud webhook body is `{"object": "whatsapp_business_account", "entry": [{"changes": [{"field":
"messages", "value": {...}}]}]}`; a `value` carries `metadata`, `contacts`, and `messages`,
`statuses` or `errors`. Each message, status and error becomes one `Notification`, keyed by what
Meta repeats when it retries the same delivery: a message by its id, a status by its message's
wamid and status, an error by its content. Other fields (account updates, template reviews) and
other phone numbers of the same app are none of this cluster's business and are dropped.

Translation (on-premises shape):
- `messages`: text, image, audio, video, document, sticker (the Cloud media id is kept: GET
  /v1/media/{id} resolves it), audio with `voice: true` as `voice`, location, contacts,
  interactive button_reply/list_reply, button, system (`customer_changed_number` as
  `user_changed_number`), each with `context` (the replied-to message: our id when the wamid is
  ours) and `referral` when present. Types the on-premises API never had (reaction, order,
  interactive flows, request_welcome, unsupported, ...) arrive as `unknown` with the on-premises
  error 501 naming the Cloud type, as the on-premises client reported types it did not support.
- `statuses`: keyed by OUR message id (`biz_opaque_callback_data`, which the Cloud driver sets to
  it, else the stored wamid → id mapping, else the wamid itself), with `conversation`, `pricing`
  (`billable`, `pricing_model`, `category`) and, when failed, `errors` in on-premises codes
  (domain/cloud_errors.py: the codes the Cloud API kept, 1000 Generic error with the Cloud code
  in `details` otherwise).
- `errors`: `{"errors": [{"code", "title", "details"}]}` mapped the same way.

Pure: the caller looks up the wamids (`wamids_to_resolve`) and passes the mapping."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping

from wacluster.domain.cloud_errors import GENERIC, ON_PREM_BY_CLOUD, TEMPLATE_CODES, TEMPLATE_GENERIC, OnPremError

MESSAGE, STATUS, ERROR = "message", "status", "error"
KINDS = (MESSAGE, STATUS, ERROR)
MEDIA_KINDS = ("image", "audio", "video", "document", "sticker")
MEDIA_FIELDS = {"image": ("id", "mime_type", "sha256", "caption"), "audio": ("id", "mime_type", "sha256"),
                "video": ("id", "mime_type", "sha256", "caption"),
                "document": ("id", "mime_type", "sha256", "caption", "filename"),
                "sticker": ("id", "mime_type", "sha256")}
SYSTEM_TYPES = {"customer_changed_number": "user_changed_number",
                "customer_identity_changed": "user_identity_changed"}
STATUSES_RESOLVING_A_SEND = {"sent": "delivered", "delivered": "delivered", "read": "delivered", "failed": "failed"}


@dataclass(frozen=True)
class Notification:
    kind: str                # MESSAGE, STATUS or ERROR
    key: str                 # the same for Meta's retries of this item, different for any other
    value: dict[str, Any]    # {"message"|"status"|"error": the item, "contacts": the sender's, if any}


def notifications(payload: Any, phone_number_id: str | None = None) -> list[Notification]:
    """The items of one webhook body, in order; those of other phone numbers (when
    `phone_number_id` is given) and of other fields are left out, and so is anything malformed."""
    found: list[Notification] = []
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        return found
    for entry in _dicts(payload.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if change.get("field") != "messages" or not isinstance(value, dict):
                continue
            number = (value.get("metadata") or {}).get("phone_number_id") if isinstance(
                value.get("metadata"), dict) else None
            if phone_number_id and number != phone_number_id:
                continue
            contacts = list(_dicts(value.get("contacts")))
            for message in _dicts(value.get("messages")):
                if not isinstance(message.get("id"), str) or not message["id"]:
                    continue
                sender = [c for c in contacts if c.get("wa_id") == message.get("from")]
                found.append(Notification(MESSAGE, f"{MESSAGE}:{message['id']}",
                                          {"message": message, "contacts": sender}))
            for status in _dicts(value.get("statuses")):
                if not isinstance(status.get("id"), str) or not isinstance(status.get("status"), str):
                    continue
                found.append(Notification(STATUS, f"{STATUS}:{status['id']}:{status['status']}", {"status": status}))
            for error in _dicts(value.get("errors")):
                digest = hashlib.sha256(json.dumps([number, error], sort_keys=True).encode()).hexdigest()
                found.append(Notification(ERROR, f"{ERROR}:{digest}", {"error": error}))
    return found


def wamids_to_resolve(notification: Notification) -> list[str]:
    """The wamids whose ids of ours the translation needs: a status's message without
    `biz_opaque_callback_data`, a message's replied-to message."""
    if notification.kind == STATUS:
        status = notification.value["status"]
        return [] if status.get("biz_opaque_callback_data") else [status["id"]]
    if notification.kind == MESSAGE:
        context = notification.value["message"].get("context")
        if isinstance(context, dict) and isinstance(context.get("id"), str):
            return [context["id"]]
    return []


def onprem_webhook(notification: Notification, our_ids: Mapping[str, str]) -> dict[str, Any]:
    """The on-premises webhook body of one notification; `our_ids` maps wamids to our message ids."""
    if notification.kind == MESSAGE:
        message = _message(notification.value["message"], our_ids)
        body: dict[str, Any] = {"messages": [message]}
        contacts = [_contact(c) for c in notification.value.get("contacts", [])]
        if contacts and message["type"] != "system":
            body = {"contacts": contacts, **body}
        return body
    if notification.kind == STATUS:
        return {"statuses": [_status(notification.value["status"], our_ids)]}
    return {"errors": [onprem_error(notification.value["error"])]}


def send_outcome(webhook: dict[str, Any]) -> tuple[str, str] | None:
    """(our message id, "delivered" or "failed") when an on-premises status body settles a send
    whose outcome we may not know: sent, delivered or read means Meta has it; failed means it
    failed. None for anything else."""
    statuses = webhook.get("statuses")
    if not statuses:
        return None
    outcome = STATUSES_RESOLVING_A_SEND.get(statuses[0].get("status"))
    return (statuses[0]["id"], outcome) if outcome else None


def onprem_error(error: Mapping[str, Any]) -> dict[str, Any]:
    """A Cloud error object (`code`, `title`, `message`, `error_data.details`) as the on-premises
    client reported errors: its own code where the Cloud API kept one, else 1000 (or 2002 for a
    template error), the Cloud code and text in `details`."""
    code = error.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    data = error.get("error_data")
    text = next((str(t) for t in ((data or {}).get("details") if isinstance(data, dict) else None,
                                  error.get("message"), error.get("title")) if t), "")
    details = f"Cloud API error {code}: {text}" if text else f"Cloud API error {code}"
    if code in ON_PREM_BY_CLOUD:
        on_prem_code, title = ON_PREM_BY_CLOUD[code]
    elif code is not None and code in TEMPLATE_CODES:
        on_prem_code, title = TEMPLATE_GENERIC
    else:
        on_prem_code, title = GENERIC
    return OnPremError(on_prem_code, title, details).as_status_error()


def _message(m: dict[str, Any], our_ids: Mapping[str, str]) -> dict[str, Any]:
    kind = m.get("type")
    out: dict[str, Any] = {"from": str(m.get("from", "")), "id": m["id"], "timestamp": str(m.get("timestamp", "")),
                           "type": kind}
    context = m.get("context")
    if isinstance(context, dict) and context.get("id"):
        out["context"] = {"from": str(context.get("from", "")), "id": our_ids.get(context["id"], context["id"])}
        for flag in ("forwarded", "frequently_forwarded"):
            if context.get(flag):
                out["context"][flag] = True
    if isinstance(m.get("referral"), dict):
        out["referral"] = m["referral"]
    body = m.get(kind) if isinstance(kind, str) else None
    if kind == "text" and isinstance(body, dict):
        out["text"] = {"body": str(body.get("body", ""))}
    elif kind in MEDIA_KINDS and isinstance(body, dict):
        if kind == "audio" and body.get("voice"):
            out["type"] = kind = "voice"
        out[kind] = {f: body[f] for f in MEDIA_FIELDS["audio" if kind == "voice" else kind] if f in body}
    elif kind == "location" and isinstance(body, dict):
        out["location"] = {f: body[f] for f in ("latitude", "longitude", "name", "address", "url") if f in body}
    elif kind == "contacts" and isinstance(body, list):
        out["contacts"] = body
    elif kind == "interactive" and isinstance(body, dict) and body.get("type") in ("button_reply", "list_reply") \
            and isinstance(body.get(body["type"]), dict):
        reply = body["type"]
        out["interactive"] = {"type": reply, reply: {f: body[reply][f] for f in ("id", "title", "description")
                                                     if f in body[reply]}}
    elif kind == "button" and isinstance(body, dict):
        out["button"] = {"payload": body.get("payload"), "text": body.get("text")}
    elif kind == "system" and isinstance(body, dict):
        system = {"body": body.get("body", ""), "type": SYSTEM_TYPES.get(body.get("type"), body.get("type"))}
        new_wa_id = body.get("new_wa_id") or body.get("wa_id")
        if new_wa_id:
            system["new_wa_id"] = new_wa_id
        out["system"] = system
    else:
        return _unknown(out, m)
    return out


def _unknown(out: dict[str, Any], m: dict[str, Any]) -> dict[str, Any]:
    what = m.get("type")
    if what == "interactive" and isinstance(m.get("interactive"), dict):
        what = f"interactive {m['interactive'].get('type')}"
    details = f"Message type is not currently supported (Cloud API type {what!r})"
    cloud_errors = [e for e in _dicts(m.get("errors"))]
    if cloud_errors:
        details += "; " + "; ".join(onprem_error(e)["details"] for e in cloud_errors)
    return {key: value for key, value in out.items() if key in ("from", "id", "timestamp", "context")} | {
        "type": "unknown", "errors": [{"code": 501, "title": "Unknown message type", "details": details}]}


def _status(s: dict[str, Any], our_ids: Mapping[str, str]) -> dict[str, Any]:
    wamid = s["id"]
    ours = s.get("biz_opaque_callback_data") or our_ids.get(wamid) or wamid
    out: dict[str, Any] = {"id": str(ours), "recipient_id": str(s.get("recipient_id", "")), "status": s["status"],
                           "timestamp": str(s.get("timestamp", ""))}
    conversation = s.get("conversation")
    if isinstance(conversation, dict) and conversation.get("id"):
        out["conversation"] = {f: conversation[f] for f in ("id", "origin", "expiration_timestamp")
                               if f in conversation}
    pricing = s.get("pricing")
    if isinstance(pricing, dict):
        out["pricing"] = {f: pricing[f] for f in ("billable", "pricing_model", "category") if f in pricing}
    errors = [onprem_error(e) for e in _dicts(s.get("errors"))]
    if errors:
        out["errors"] = errors
    elif s["status"] == "failed":
        out["errors"] = [OnPremError(*GENERIC, "the Cloud API reported the message failed without a reason")
                         .as_status_error()]
    return out


def _contact(c: dict[str, Any]) -> dict[str, Any]:
    profile = c.get("profile") if isinstance(c.get("profile"), dict) else {}
    return {"profile": {"name": profile.get("name", "")}, "wa_id": str(c.get("wa_id", ""))}


def _dicts(items: Any):
    return (item for item in items if isinstance(item, dict)) if isinstance(items, list) else ()
