"""The contacts table: the result of each number's last check (POST /v1/contacts), so a number
checked within the expiry is answered from here, by any webapp, without asking WhatsApp again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from psycopg import AsyncConnection


@dataclass(frozen=True)
class Checked:
    number: str          # digits, as domain.contacts.normalise_number gives them
    status: str          # valid | invalid
    wa_id: str | None


async def fresh(conn: AsyncConnection, numbers: list[str], expiry: timedelta) -> dict[str, Checked]:
    """The cached results younger than `expiry` among `numbers`."""
    rows = await (await conn.execute(
        "SELECT number, status, wa_id FROM contacts WHERE number = ANY(%s) AND checked_at > now() - %s",
        (numbers, expiry))).fetchall()
    return {row[0]: Checked(*row) for row in rows}


async def record(conn: AsyncConnection, results: list[Checked]) -> None:
    """Store fresh results (a later check of a number replaces the earlier one)."""
    if not results:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO contacts (number, status, wa_id, checked_at) VALUES (%s, %s, %s, now()) "
            "ON CONFLICT (number) DO UPDATE SET status = EXCLUDED.status, wa_id = EXCLUDED.wa_id, "
            "checked_at = EXCLUDED.checked_at",
            [(r.number, r.status, r.wa_id) for r in results])
