"""The API's users (besides the built-in admin, whose password is the cluster's admin Secret)."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation

from wacluster.db.tokens import digest


@dataclass(frozen=True)
class StoredUser:
    username: str
    password_hash: str
    role: str
    must_change_password: bool


class UserExists(Exception):
    pass


async def create(conn: AsyncConnection, username: str, password_hash: str, role: str) -> None:
    try:
        await conn.execute("INSERT INTO users (username, password_hash, role) VALUES (%s, %s, %s)",
                           (username, password_hash, role))
    except UniqueViolation:
        raise UserExists(username)


async def get(conn: AsyncConnection, username: str) -> StoredUser | None:
    row = await (await conn.execute(
        "SELECT username, password_hash, role, must_change_password FROM users WHERE username = %s",
        (username,))).fetchone()
    return StoredUser(*row) if row else None


async def set_password(conn: AsyncConnection, username: str, password_hash: str) -> bool:
    """Store a new password and revoke every token of the user; False when there is no such user."""
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE users SET password_hash = %s, must_change_password = false, updated_at = now() "
            "WHERE username = %s", (password_hash, username))
        if cur.rowcount:
            await conn.execute("DELETE FROM tokens WHERE username = %s", (username,))
    return bool(cur.rowcount)


async def delete(conn: AsyncConnection, username: str) -> bool:
    """Remove the user and revoke its tokens; False when there is no such user."""
    async with conn.transaction():
        cur = await conn.execute("DELETE FROM users WHERE username = %s", (username,))
        await conn.execute("DELETE FROM tokens WHERE username = %s", (username,))
    return bool(cur.rowcount)


async def revoke_token(conn: AsyncConnection, token: str) -> None:
    await conn.execute("DELETE FROM tokens WHERE token = %s", (digest(token),))
