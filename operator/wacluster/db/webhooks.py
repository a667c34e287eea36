"""Webhook events: written durably by whoever sees them, delivered by any webapp with retries."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb


async def enqueue(conn: AsyncConnection, payloads: list[dict]) -> None:
    if not payloads:
        return
    async with conn.cursor() as cur:
        await cur.executemany("INSERT INTO webhook_events (payload) VALUES (%s)", [(Jsonb(p),) for p in payloads])


async def claim_due(conn: AsyncConnection, limit: int, lock_seconds: float) -> list[tuple[int, dict, int]]:
    """Take due events for `lock_seconds` (so two webapps never post the same event at once)."""
    rows = await (await conn.execute(
        "UPDATE webhook_events SET next_attempt_at = now() + make_interval(secs => %s), attempts = attempts + 1 "
        "WHERE id IN (SELECT id FROM webhook_events WHERE delivered_at IS NULL AND next_attempt_at <= now() "
        "             ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
        "RETURNING id, payload, attempts", (lock_seconds, limit))).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


async def delivered(conn: AsyncConnection, event_id: int) -> None:
    await conn.execute("UPDATE webhook_events SET delivered_at = now(), last_error = NULL WHERE id = %s", (event_id,))


async def retry_later(conn: AsyncConnection, event_id: int, delay: float, error: str) -> None:
    await conn.execute(
        "UPDATE webhook_events SET next_attempt_at = now() + make_interval(secs => %s), last_error = %s WHERE id = %s",
        (delay, error[:500], event_id))
