"""The registered WhatsApp account (one per cluster)."""

from __future__ import annotations

from psycopg import AsyncConnection

from wacluster.api.interprocess import NotifyKind
from wacluster.db.shard_map import notify


async def registered_phone(conn: AsyncConnection) -> str | None:
    row = await (await conn.execute("SELECT phone FROM account WHERE id = 1")).fetchone()
    return row[0] if row else None


async def register(conn: AsyncConnection, phone: str) -> None:
    await conn.execute(
        "INSERT INTO account (id, phone) VALUES (1, %s) "
        "ON CONFLICT (id) DO UPDATE SET phone = EXCLUDED.phone, registered_at = now()", (phone,))
    await notify(conn, NotifyKind.ACCOUNT, phone=phone)
