"""Pruning settled rows older than their retention, one bounded batch per call.

A batch is one short DELETE of at most `limit` rows, the oldest first through the table's
retention index (migration 7), skipping rows another transaction holds (SKIP LOCKED): no batch
holds many locks for long or waits behind the delivery path. Only settled rows qualify, whatever
their age: messages delivered, cancelled or failed (never queued or claimed), webhook events
delivered or dead (never one still being retried), Cloud notifications relayed to the business
(never one still to relay; kept as long as webhook events, which outlasts Meta's retries of a
payload, so a retry is still recognised), tokens expired for a day, failovers (history only).
Media rows go with their files, in the webapp (runtime/webapp/media_retention.py)."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import AsyncConnection


@dataclass(frozen=True)
class Prunable:
    table: str
    key: str           # the column the DELETE matches the selected rows on (unique)
    condition: str     # settled and old: %(days)s is the retention in days
    order: str         # the indexed column the oldest rows are found by
    setting: str | None  # the settings key holding the days; None: fixed, the days in `condition`


PRUNABLE: tuple[Prunable, ...] = (
    Prunable("messages", "id",
             "status IN ('delivered', 'cancelled', 'failed') AND created_at < now() - %(days)s * interval '1 day'",
             "created_at", "retention_messages_days"),
    Prunable("webhook_events", "id", "delivered_at < now() - %(days)s * interval '1 day'",
             "delivered_at", "retention_webhook_events_days"),
    Prunable("webhook_events", "id", "dead_at < now() - %(days)s * interval '1 day'",
             "dead_at", "retention_webhook_events_days"),
    Prunable("cloud_notifications", "id", "relayed_at < now() - %(days)s * interval '1 day'",
             "relayed_at", "retention_webhook_events_days"),
    Prunable("failovers", "id", "at < now() - %(days)s * interval '1 day'", "at", "retention_failovers_days"),
    # A token is useless once expired; a day's grace as db/tokens.py keeps it.
    Prunable("tokens", "token", "expires_at < now() - interval '1 day'", "expires_at", None),
)


async def prune_batch(conn: AsyncConnection, prunable: Prunable, days: float, limit: int) -> int:
    """Delete up to `limit` of the oldest rows past `days`; returns how many were deleted."""
    t = prunable
    cur = await conn.execute(
        f"DELETE FROM {t.table} WHERE {t.key} IN (SELECT {t.key} FROM {t.table} WHERE {t.condition} "
        f"ORDER BY {t.order} LIMIT %(limit)s FOR UPDATE SKIP LOCKED)", {"days": days, "limit": limit})
    return cur.rowcount
