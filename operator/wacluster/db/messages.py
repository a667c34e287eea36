"""Outgoing messages: durable before the API answers, delivered once (the gateway dedupes ids)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class Message:
    id: str
    recipient: str
    shard: int
    body: dict[str, Any]


async def insert(conn: AsyncConnection, message: Message, route_hash: int) -> None:
    await conn.execute(
        "INSERT INTO messages (id, recipient, route_hash, shard, body) VALUES (%s, %s, %s, %s, %s)",
        (message.id, message.recipient, route_hash, message.shard, Jsonb(message.body)))


async def insert_many(conn: AsyncConnection, rows: list[tuple[Message, int]]) -> None:
    """One statement for a batch: five arrays unnested into rows. Cheaper in CPU on both sides
    than a pipelined executemany (one Bind/Execute per row), and atomic: all rows or none."""
    await conn.execute(
        "INSERT INTO messages (id, recipient, route_hash, shard, body) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::int[], %s::jsonb[])",
        ([m.id for m, _ in rows], [m.recipient for m, _ in rows], [h for _, h in rows],
         [m.shard for m, _ in rows], [Jsonb(m.body) for m, _ in rows]))


async def queued(conn: AsyncConnection, shard: int, limit: int = 500) -> list[Message]:
    rows = await (await conn.execute(
        "SELECT id, recipient, shard, body FROM messages WHERE status = 'queued' AND shard = %s "
        "ORDER BY created_at LIMIT %s", (shard, limit))).fetchall()
    return [Message(*row) for row in rows]


async def mark_delivered(conn: AsyncConnection, ids: list[str], coreapp: str, epoch: int) -> int:
    if not ids:
        return 0
    cur = await conn.execute(
        "UPDATE messages SET status = 'delivered', delivered_at = now(), delivered_by = %s, delivered_epoch = %s "
        "WHERE id = ANY(%s) AND status = 'queued'", (coreapp, epoch, ids))
    return cur.rowcount


async def cancel(conn: AsyncConnection, message_id: str) -> bool:
    """Withdraw a message no coreapp accepted; False when it was already delivered."""
    cur = await conn.execute("UPDATE messages SET status = 'cancelled' WHERE id = %s AND status = 'queued'",
                             (message_id,))
    return cur.rowcount == 1


async def status(conn: AsyncConnection, message_id: str) -> str | None:
    row = await (await conn.execute("SELECT status FROM messages WHERE id = %s", (message_id,))).fetchone()
    return row[0] if row else None
