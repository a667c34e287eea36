"""Metadata of uploaded media; the bytes live on the shared media volume."""

from __future__ import annotations

from psycopg import AsyncConnection


async def add(conn: AsyncConnection, media_id: str, content_type: str, size: int) -> None:
    await conn.execute("INSERT INTO media (id, content_type, size) VALUES (%s, %s, %s)", (media_id, content_type, size))


async def add_if_absent(conn: AsyncConnection, media_id: str, content_type: str, size: int) -> None:
    """Like add, for media another webapp may have stored under the same id meanwhile (a Cloud
    media id fetched by two at once: same bytes)."""
    await conn.execute("INSERT INTO media (id, content_type, size) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
                       (media_id, content_type, size))


async def get(conn: AsyncConnection, media_id: str) -> tuple[str, int] | None:
    row = await (await conn.execute("SELECT content_type, size FROM media WHERE id = %s", (media_id,))).fetchone()
    return (row[0], row[1]) if row else None


async def expired(conn: AsyncConnection, days: float, limit: int) -> list[str]:
    """Up to `limit` ids of the oldest media uploaded more than `days` ago."""
    rows = await (await conn.execute(
        "SELECT id FROM media WHERE created_at < now() - %s * interval '1 day' ORDER BY created_at LIMIT %s",
        (days, limit))).fetchall()
    return [r[0] for r in rows]


async def remove(conn: AsyncConnection, media_ids: list[str]) -> int:
    cur = await conn.execute("DELETE FROM media WHERE id = ANY(%s)", (media_ids,))
    return cur.rowcount
