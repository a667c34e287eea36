"""Cloud API webhook notifications as received (schema 12): stored by the webapp that Meta POSTed
to, before it answers 200, then relayed by any webapp (runtime/webapp/cloud_relay.py).

A row is one message, status or error (domain/cloud_inbound.py); its `key` is what Meta repeats
when it retries a delivery, so a retry stores nothing. A row is pending until relayed
(`relayed_at`): its on-premises webhook event queued and its effect on our message applied, in
the transaction that sets `relayed_at`. Relayed rows are kept `KEEP_FOR` seconds so a late retry
is still recognised, then pruned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from wacluster.domain.cloud_inbound import Notification

# Meta retries an unacknowledged webhook for up to 7 days; a day more covers clock and queueing.
KEEP_FOR = 8 * 86400.0


@dataclass(frozen=True)
class Received:
    id: int
    notification: Notification
    attempts: int


async def store(conn: AsyncConnection, notifications: list[Notification]) -> int:
    """Store what is new (one statement); returns how many were new (the rest are retries)."""
    if not notifications:
        return 0
    cur = await conn.execute(
        "INSERT INTO cloud_notifications (key, kind, value) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::jsonb[]) ON CONFLICT (key) DO NOTHING",
        ([storable(n.key) for n in notifications], [n.kind for n in notifications],
         [Jsonb(storable(n.value)) for n in notifications]))
    return cur.rowcount


def storable(value: Any) -> Any:
    """`value` with every U+0000 in its strings (keys too) replaced by U+FFFD: PostgreSQL's text
    and jsonb cannot hold that character, and what Meta sends (a user's text) must be kept, not
    refused (a refused webhook is retried by Meta for days, then dropped)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable(item) for item in value]
    return value


async def lock_due(conn: AsyncConnection, limit: int) -> list[Received]:
    """Pending rows that are due, oldest first, locked until the caller's transaction ends (so two
    webapps never relay one row; a webapp that dies mid-way leaves it pending)."""
    rows = await (await conn.execute(
        "SELECT id, kind, key, value, attempts FROM cloud_notifications "
        "WHERE relayed_at IS NULL AND next_attempt_at <= now() ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit,))).fetchall()
    return [Received(row[0], Notification(row[1], row[2], row[3]), row[4]) for row in rows]


async def relayed(conn: AsyncConnection, ids: list[int]) -> None:
    if ids:
        await conn.execute("UPDATE cloud_notifications SET relayed_at = now(), last_error = NULL, "
                           "attempts = attempts + 1 WHERE id = ANY(%s)", (ids,))


async def postpone(conn: AsyncConnection, row_id: int, delay: float, error: str) -> None:
    """A row that could not be relayed (it does not translate): try again in `delay` seconds."""
    await conn.execute(
        "UPDATE cloud_notifications SET attempts = attempts + 1, last_error = %s, "
        "next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s", (error[:500], delay, row_id))


async def prune(conn: AsyncConnection, keep_for: float = KEEP_FOR, limit: int = 1000) -> int:
    """Delete up to `limit` rows relayed more than `keep_for` seconds ago; returns how many."""
    cur = await conn.execute(
        "DELETE FROM cloud_notifications WHERE id IN (SELECT id FROM cloud_notifications "
        "WHERE relayed_at < now() - make_interval(secs => %s) LIMIT %s FOR UPDATE SKIP LOCKED)", (keep_for, limit))
    return cur.rowcount


async def pending(conn: AsyncConnection) -> int:
    row = await (await conn.execute("SELECT count(*) FROM cloud_notifications WHERE relayed_at IS NULL")).fetchone()
    return row[0]

