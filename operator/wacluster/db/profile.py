"""The account's profile: `about`, the photo and the business profile (one row, made on first write)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb


async def _upsert(conn: AsyncConnection, column_values: dict[str, Any]) -> None:
    columns = ", ".join(column_values)
    placeholders = ", ".join(["%s"] * len(column_values))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in column_values)
    await conn.execute(f"INSERT INTO profile (id, {columns}) VALUES (1, {placeholders}) "
                       f"ON CONFLICT (id) DO UPDATE SET {updates}, updated_at = now()",
                       tuple(column_values.values()))


async def about(conn: AsyncConnection) -> str | None:
    row = await (await conn.execute("SELECT about FROM profile WHERE id = 1")).fetchone()
    return row[0] if row else None


async def set_about(conn: AsyncConnection, text: str) -> None:
    await _upsert(conn, {"about": text})


async def photo(conn: AsyncConnection) -> tuple[bytes, str] | None:
    row = await (await conn.execute(
        "SELECT photo, photo_content_type FROM profile WHERE id = 1 AND photo IS NOT NULL")).fetchone()
    return (bytes(row[0]), row[1]) if row else None


async def set_photo(conn: AsyncConnection, data: bytes | None, content_type: str | None) -> None:
    await _upsert(conn, {"photo": data, "photo_content_type": content_type})


async def business(conn: AsyncConnection) -> dict[str, Any] | None:
    row = await (await conn.execute("SELECT business FROM profile WHERE id = 1")).fetchone()
    return row[0] if row else None


async def merge_business(conn: AsyncConnection, changes: dict[str, Any]) -> None:
    """Merge `changes` into the stored business profile in one statement (a concurrent change to
    another field is kept); a field set to None is removed."""
    await conn.execute(
        "INSERT INTO profile (id, business) VALUES (1, jsonb_strip_nulls(%(changes)s)) ON CONFLICT (id) DO UPDATE "
        "SET business = jsonb_strip_nulls(coalesce(profile.business, '{}') || %(changes)s), updated_at = now()",
        {"changes": Jsonb(changes)})
