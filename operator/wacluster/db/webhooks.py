"""Webhook events: written durably by whoever sees them, delivered by any webapp with retries.

An event is pending (delivered_at and dead_at NULL), delivered, or dead: still undelivered
`dead_after` seconds after it was queued (enqueued_at), and then never attempted again. A dead
event's next_attempt_at is 'infinity' too, so roles older than the dead_at column skip it."""

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
        "WHERE id IN (SELECT id FROM webhook_events WHERE delivered_at IS NULL AND dead_at IS NULL "
        "             AND next_attempt_at <= now() ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
        "RETURNING id, payload, attempts", (lock_seconds, limit))).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


async def delivered(conn: AsyncConnection, event_ids: list[int]) -> None:
    """These were delivered (one statement, one commit for a whole dispatch round)."""
    if event_ids:
        await conn.execute("UPDATE webhook_events SET delivered_at = now(), last_attempt_at = now(), "
                           "last_error = NULL WHERE id = ANY(%s)", (event_ids,))


async def failed(conn: AsyncConnection, event_id: int, delay: float, error: str, dead_after: float) -> bool:
    """Record a failed attempt: the next one `delay` seconds from now, or none when the event was
    queued at least `dead_after` seconds ago (it is dead). Returns True when it is dead."""
    row = await (await conn.execute(
        "UPDATE webhook_events SET last_error = %(error)s, last_attempt_at = now(), "
        "  dead_at = CASE WHEN enqueued_at <= now() - make_interval(secs => %(dead_after)s) THEN now() END, "
        "  next_attempt_at = CASE WHEN enqueued_at <= now() - make_interval(secs => %(dead_after)s) "
        "                         THEN 'infinity' ELSE now() + make_interval(secs => %(delay)s) END "
        "WHERE id = %(id)s AND delivered_at IS NULL AND dead_at IS NULL RETURNING dead_at IS NOT NULL",
        {"error": error[:500], "dead_after": dead_after, "delay": delay, "id": event_id})).fetchone()
    return bool(row and row[0])


async def expire(conn: AsyncConnection, dead_after: float) -> int:
    """Dead-letter pending events queued at least `dead_after` seconds ago that nobody is posting
    right now (e.g. queued before the webhook URL was removed). Returns how many."""
    cur = await conn.execute(
        "UPDATE webhook_events SET dead_at = now(), next_attempt_at = 'infinity', "
        "  last_error = coalesce(last_error, 'never delivered') "
        "WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= now() "
        "  AND enqueued_at <= now() - make_interval(secs => %s)", (dead_after,))
    return cur.rowcount


async def backlog(conn: AsyncConnection) -> tuple[int, int]:
    """(pending, dead) events: both are undelivered, so the partial index on due events finds them."""
    row = await (await conn.execute(
        "SELECT count(*) FILTER (WHERE dead_at IS NULL), count(*) FILTER (WHERE dead_at IS NOT NULL) "
        "FROM webhook_events WHERE delivered_at IS NULL")).fetchone()
    return row[0], row[1]
