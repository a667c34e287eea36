"""API bearer tokens, stored hashed so a database dump reveals none."""

from __future__ import annotations

import hashlib
from datetime import datetime

from psycopg import AsyncConnection


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def store(conn: AsyncConnection, token: str, username: str, ttl_seconds: float) -> datetime:
    row = await (await conn.execute(
        "INSERT INTO tokens (token, username, expires_at) VALUES (%s, %s, now() + make_interval(secs => %s)) "
        "RETURNING expires_at", (digest(token), username, ttl_seconds))).fetchone()
    await conn.execute("DELETE FROM tokens WHERE expires_at < now() - interval '1 day'")
    return row[0]


async def seconds_left(conn: AsyncConnection, token: str) -> tuple[float, str] | None:
    """(seconds until the token expires, the user it was issued to); None when unknown or expired."""
    row = await (await conn.execute(
        "SELECT extract(epoch FROM expires_at - now())::float8, username FROM tokens WHERE token = %s",
        (digest(token),))).fetchone()
    if row is None or row[0] <= 0:
        return None
    return row[0], row[1]
