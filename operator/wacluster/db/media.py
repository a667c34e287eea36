"""Metadata of uploaded media; the bytes live on the shared media volume."""

from __future__ import annotations

from psycopg import AsyncConnection


async def add(conn: AsyncConnection, media_id: str, content_type: str, size: int) -> None:
    await conn.execute("INSERT INTO media (id, content_type, size) VALUES (%s, %s, %s)", (media_id, content_type, size))


async def get(conn: AsyncConnection, media_id: str) -> tuple[str, int] | None:
    row = await (await conn.execute("SELECT content_type, size FROM media WHERE id = %s", (media_id,))).fetchone()
    return (row[0], row[1]) if row else None
