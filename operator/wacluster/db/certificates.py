"""Certificates uploaded through the API, by name (one row each): WEBHOOKS_CA is the CA bundle
webhook deliveries verify receivers with (runtime/webapp/webhook_trust.py)."""

from __future__ import annotations

from psycopg import AsyncConnection

WEBHOOKS_CA = "webhooks_ca"


async def read(conn: AsyncConnection, name: str) -> str | None:
    row = await (await conn.execute("SELECT pem FROM certificates WHERE name = %s", (name,))).fetchone()
    return row[0] if row else None


async def write(conn: AsyncConnection, name: str, pem: str) -> None:
    """Store `pem` under `name`, replacing what was there (as the on-premises API overwrites)."""
    await conn.execute("INSERT INTO certificates (name, pem) VALUES (%s, %s) "
                       "ON CONFLICT (name) DO UPDATE SET pem = EXCLUDED.pem, updated_at = now()", (name, pem))


async def delete(conn: AsyncConnection, name: str) -> bool:
    """Remove the certificate; False when there was none."""
    cur = await conn.execute("DELETE FROM certificates WHERE name = %s", (name,))
    return cur.rowcount > 0
