"""The settings table: runtime settings every role reads live."""

from __future__ import annotations

import json
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from wacluster.api.interprocess import NotifyKind
from wacluster.db.shard_map import notify

DEFAULTS: dict[str, Any] = {
    "shards": 1,
    "heartbeat_interval": 5.0,
    "unhealthy_interval": 30.0,
    "db_heartbeat_interval": 60.0,
    "db_unhealthy_after": 120.0,
    "lease_duration": 15.0,
    "renew_deadline": 10.0,
    "retry_period": 2.0,
    "webhook_url": None,
    # The on-premises application settings, at the defaults its reference documents. Webhook
    # retries read the two backoff keys; the others are stored and returned.
    "callback_persist": True,
    "callback_backoff_delay_ms": 3000,
    "max_callback_backoff_delay_ms": 900000,
    "on_call_pager": None,
    "pass_through": False,
    "sent_status": False,
    "media": {"auto_download": []},
    "webhook_max_concurrent_requests": 6,
    # `sent` statuses are opt-in (here or with sent_status), as they always were on-premises;
    # domain/status_webhooks.py applies these.
    "webhook_message": {"sent": False, "delivered": True, "read": True},
    "notify_user_change_number": False,
    "show_security_notifications": False,
    "db_garbagecollector_enable": True,
    "garbagecollector_enable": {"media": True, "messages": True},
    "skip_referral_media_download": False,
    "axolotl_context_striping_disabled": False,
    "webhook_payload_conversation_pricingmodel_disabled": False,
    # An undelivered webhook event this old is dead (never retried; replayable): a day, so a
    # receiver down for a night gets everything once it is back (runtime/webapp/webhooks.py).
    "webhook_dead_after_seconds": 86400,
    # Retention (spec.retention sets the days; 0 keeps forever): settled rows and media older
    # than that are pruned by the primary master and a webapp, a run every interval (seconds).
    "retention_messages_days": 30,
    "retention_webhook_events_days": 7,
    "retention_failovers_days": 90,
    "retention_media_days": 30,
    "retention_interval": 3600.0,
}
# What GET /v1/settings/application shows under its on-premises name (webhooks is nested).
ONPREM_KEYS = ("callback_persist", "callback_backoff_delay_ms", "max_callback_backoff_delay_ms", "on_call_pager",
               "pass_through", "sent_status", "media", "notify_user_change_number", "show_security_notifications",
               "db_garbagecollector_enable", "garbagecollector_enable", "skip_referral_media_download",
               "axolotl_context_striping_disabled", "webhook_payload_conversation_pricingmodel_disabled")


async def read_all(conn: AsyncConnection) -> dict[str, Any]:
    rows = await (await conn.execute("SELECT key, value FROM settings")).fetchall()
    return {**DEFAULTS, **{key: value for key, value in rows}}


async def write(conn: AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    """Upsert only the keys that changed; announce them. Returns what changed."""
    current = await read_all(conn)
    changed = {k: v for k, v in values.items() if current.get(k) != v}
    if not changed:
        return {}
    async with conn.transaction():
        for key, value in changed.items():
            await conn.execute(
                "INSERT INTO settings (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
                (key, Jsonb(value)))
        await notify(conn, NotifyKind.SETTINGS, keys=sorted(changed))
    return changed


def dumps(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True)
