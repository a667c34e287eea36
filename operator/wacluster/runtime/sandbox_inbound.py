"""What the sandbox WhatsApp server sends a business on its own: inbound messages from users and
status changes of sent messages, in the on-premises webhook shapes, produced on request (a test's
or a demo's POST /inbound/{kind}) and sent to a live connection of the account as `inbound` frames.

A frame stays pending until the coreapp acknowledges it (`inbound_ack` with the frame's `ref`,
sent once the webhook event is durable); whatever is pending is sent again to the next connection
the account makes, as the real server keeps undelivered notifications for a client that was away.
So a frame may arrive twice (the on-premises API promises webhooks at least once, not exactly once).

Kinds: `message` (`type`: text, image, audio, video, document, voice, sticker, location, contacts,
interactive with `reply`: button_reply or list_reply, button, system, unknown; `from`, `name`),
`status` (`id`, `status`: sent, delivered, read, failed with `errors`, deleted; `recipient_id`) and
`error` (`code`, `title`, `details`). Fields the request names replace the generated ones."""

from __future__ import annotations

import hashlib
import itertools
import secrets
import time
from typing import Any

from aiohttp import web

MEDIA_TYPES = {"image": "image/jpeg", "audio": "audio/mpeg", "video": "video/mp4", "document": "application/pdf",
               "voice": "audio/ogg; codecs=opus", "sticker": "image/webp"}
MESSAGE_TYPES = {"text", "location", "contacts", "interactive", "button", "system", "unknown", *MEDIA_TYPES}
STATUSES = {"sent", "delivered", "read", "failed", "deleted"}


def _message_id() -> str:
    return "ABG" + secrets.token_urlsafe(18)


def _media(kind: str) -> dict[str, Any]:
    media_id = secrets.token_hex(16)
    body: dict[str, Any] = {"id": media_id, "mime_type": MEDIA_TYPES[kind],
                            "sha256": hashlib.sha256(media_id.encode()).hexdigest()}
    if kind in ("image", "video", "document"):
        body["caption"] = f"a {kind} from the sandbox"
    if kind == "document":
        body["filename"] = "sandbox.pdf"
    return body


def message_payload(request: dict[str, Any], business: str, now: float) -> dict[str, Any]:
    """`{"contacts": [...], "messages": [...]}` for one inbound message (system messages carry no
    contact); ValueError for an unknown type."""
    kind = request.get("type", "text")
    if kind not in MESSAGE_TYPES:
        raise ValueError(f"type must be one of {', '.join(sorted(MESSAGE_TYPES))}")
    sender = str(request.get("from", "16315551234"))
    message: dict[str, Any] = {"from": sender, "id": _message_id(), "timestamp": str(int(now)), "type": kind}
    if kind == "text":
        message["text"] = {"body": request.get("body", "hello from the sandbox")}
    elif kind in MEDIA_TYPES:
        message[kind] = _media(kind)
    elif kind == "location":
        message["location"] = {"latitude": 37.758056, "longitude": -122.425332, "name": "Facebook HQ",
                               "address": "1 Hacker Way, Menlo Park, CA 94025", "url": "https://example.com"}
    elif kind == "contacts":
        message["contacts"] = [{"name": {"formatted_name": "John Smith", "first_name": "John", "last_name": "Smith"},
                                "phones": [{"phone": "+1 (650) 555-1234", "type": "WORK", "wa_id": "16505551234"}]}]
    elif kind == "interactive":
        reply = request.get("reply", "button_reply")
        if reply not in ("button_reply", "list_reply"):
            raise ValueError("reply must be button_reply or list_reply")
        chosen = {"id": "0", "title": "BUTTON1"} if reply == "button_reply" else {
            "id": "0", "title": "ROW1", "description": "the first row"}
        message["interactive"] = {"type": reply, reply: chosen}
        message["context"] = {"from": business, "id": f"wamid.{secrets.token_hex(16)}"}
    elif kind == "button":
        message["button"] = {"payload": "yes-payload", "text": "Yes"}
        message["context"] = {"from": business, "id": f"wamid.{secrets.token_hex(16)}"}
    elif kind == "system":
        new_wa_id = str(request.get("new_wa_id", "16315550000"))
        message["system"] = {"body": f"User {sender} changed from {sender} to {new_wa_id}",
                             "new_wa_id": new_wa_id, "type": "user_changed_number"}
    elif kind == "unknown":
        message["errors"] = [{"code": 501, "title": "Unknown message type",
                              "details": "Message type is not currently supported"}]
    message.update(request.get("fields", {}))
    payload: dict[str, Any] = {"messages": [message]}
    if kind != "system":
        payload = {"contacts": [{"profile": {"name": request.get("name", "Sandbox User")}, "wa_id": sender}],
                   **payload}
    return payload


def status_payload(request: dict[str, Any], now: float) -> dict[str, Any]:
    """`{"statuses": [...]}` for one status change; ValueError for an unknown status."""
    status = request.get("status", "delivered")
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(sorted(STATUSES))}")
    if "id" not in request:
        raise ValueError("id (the message's id) is required")
    item: dict[str, Any] = {"id": str(request["id"]), "recipient_id": str(request.get("recipient_id", "16315551234")),
                            "status": status, "timestamp": str(int(now))}
    if status in ("sent", "delivered", "read"):
        item["conversation"] = {"id": secrets.token_hex(16), "origin": {"type": "business_initiated"}}
        item["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "business_initiated"}
    if status == "failed":
        item["errors"] = request.get("errors") or [{
            "code": 470, "title": "Message failed to send because more than 24 hours have passed since the "
                                  "customer last replied to this number"}]
    return {"statuses": [item]}


def error_payload(request: dict[str, Any]) -> dict[str, Any]:
    return {"errors": [{"code": int(request.get("code", 1014)), "title": request.get("title", "Internal error"),
                        "details": request.get("details", "an error the sandbox was asked to report")}]}


class InboundEvents:
    """The pending inbound frames of each account, and the endpoint that produces them."""

    def __init__(self, live: dict) -> None:
        self.live = live  # (account, shard) -> the sandbox's live Connection
        self.pending: dict[str, dict[int, dict]] = {}  # account -> ref -> frame
        self.refs = itertools.count(1)
        self.acked: list[int] = []

    async def produce(self, request: web.Request) -> web.Response:
        """POST /inbound/{message|status|error} (test and demo only): build the payload, send it to
        a live connection of the account (`account`; the only one when there is one) or keep it
        for the next. Answers the payload and whether it was sent now."""
        body = await request.json()
        accounts = sorted({account for account, _ in self.live} | set(self.pending))
        account = body.get("account") or (accounts[0] if len(accounts) == 1 else None)
        if account is None:
            return web.json_response({"error": f"name the account: one of {accounts}"}, status=400)
        try:
            kind = request.match_info["kind"]
            if kind == "message":
                payload = message_payload(body, account.lstrip("+"), time.time())
            elif kind == "status":
                payload = status_payload(body, time.time())
            elif kind == "error":
                payload = error_payload(body)
            else:
                raise ValueError("kind must be message, status or error")
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        frame = {"type": "inbound", "ref": next(self.refs), "payload": payload}
        self.pending.setdefault(account, {})[frame["ref"]] = frame
        sent = await self._send(account, [frame])
        return web.json_response({"ref": frame["ref"], "payload": payload, "sent": sent})

    async def _send(self, account: str, frames: list[dict]) -> bool:
        """To the account's live connection of the lowest shard; False when there is none."""
        shards = sorted(shard for a, shard in self.live if a == account)
        if not shards:
            return False
        connection = self.live[(account, shards[0])]
        try:
            for frame in frames:
                await connection.ws.send_json(frame)
        except (ConnectionError, RuntimeError):
            return False
        return True

    async def resend(self, account: str) -> None:
        """A connection of the account was admitted: what it never acknowledged goes to it again."""
        frames = list(self.pending.get(account, {}).values())
        if frames:
            await self._send(account, frames)

    def acknowledged(self, account: str, ref) -> None:
        if self.pending.get(account, {}).pop(ref, None) is not None:
            self.acked.append(ref)
