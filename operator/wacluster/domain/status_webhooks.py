"""Which message statuses become webhooks, by the on-premises application settings: `sent` when
`webhooks.message.sent` or the older `sent_status` is true (the reference: "either use this or
webhooks.message.sent"; both default to false, so `sent` is opt-in as it always was), `delivered`
and `read` unless `webhooks.message.delivered` / `.read` is false. `failed` and `deleted` have no
setting and are always sent: a client must learn that a message will never arrive."""

from __future__ import annotations

from typing import Any


def status_wanted(status: str, settings: dict[str, Any]) -> bool:
    """Whether a status change of kind `status` is posted, under `settings` (db/settings.py keys)."""
    message = settings.get("webhook_message") or {}
    if status == "sent":
        return bool(message.get("sent")) or bool(settings.get("sent_status"))
    if status in ("delivered", "read"):
        return message.get(status, True) is not False
    return True


def wanted_payload(payload: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any] | None:
    """`payload` (an on-premises webhook body) without the statuses nobody asked for; None when
    nothing is left to post. Inbound messages and errors pass unchanged."""
    statuses = payload.get("statuses")
    if not isinstance(statuses, list):
        return payload
    kept = [s for s in statuses if not isinstance(s, dict) or status_wanted(str(s.get("status")), settings)]
    if len(kept) == len(statuses):
        return payload
    rest = {key: value for key, value in payload.items() if key != "statuses"}
    if kept:
        return {**rest, "statuses": kept}
    return rest or None
