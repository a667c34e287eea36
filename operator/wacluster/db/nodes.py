"""Nodes (masters and coreapps), their database heartbeats and the masters' heartbeat results."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import AsyncConnection


@dataclass(frozen=True)
class NodeRow:
    name: str
    role: str
    node_id: str
    address: str
    version: str
    db_heartbeat_age: float   # seconds, database clock
    gateway_status: str
    is_primary: bool
    stopping: bool
    error: str | None


async def register(conn: AsyncConnection, name: str, role: str, node_id: str, address: str, version: str) -> None:
    await conn.execute(
        "INSERT INTO nodes (name, role, node_id, address, version) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role, node_id = EXCLUDED.node_id, "
        "address = EXCLUDED.address, version = EXCLUDED.version, started_at = now(), "
        "db_heartbeat_at = now(), gateway_status = 'disconnected', is_primary = false, stopping = false, error = NULL",
        (name, role, node_id, address, version))


async def heartbeat(conn: AsyncConnection, name: str) -> None:
    await conn.execute("UPDATE nodes SET db_heartbeat_at = now() WHERE name = %s", (name,))


async def set_state(conn: AsyncConnection, name: str, **fields) -> None:
    allowed = {"gateway_status", "is_primary", "stopping", "error"}
    if not fields or set(fields) - allowed:
        raise ValueError(f"unknown node fields: {set(fields) - allowed}")
    assignments = ", ".join(f"{key} = %({key})s" for key in fields)
    await conn.execute(f"UPDATE nodes SET {assignments} WHERE name = %(name)s", {**fields, "name": name})


async def mark_primary(conn: AsyncConnection, name: str) -> None:
    """The new primary clears the flag of every other master, including a killed predecessor."""
    await conn.execute("UPDATE nodes SET is_primary = (name = %s) WHERE role = 'master'", (name,))


async def remove(conn: AsyncConnection, name: str) -> None:
    await conn.execute("DELETE FROM nodes WHERE name = %s", (name,))
    await conn.execute("DELETE FROM heartbeats WHERE master = %s OR coreapp = %s", (name, name))


async def list_nodes(conn: AsyncConnection, role: str | None = None) -> list[NodeRow]:
    query = ("SELECT name, role, node_id, address, version, "
             "extract(epoch FROM now() - db_heartbeat_at)::float8, gateway_status, is_primary, stopping, error "
             "FROM nodes")
    params: tuple = ()
    if role:
        query += " WHERE role = %s"
        params = (role,)
    rows = await (await conn.execute(query + " ORDER BY name", params)).fetchall()
    return [NodeRow(*row) for row in rows]


async def record_heartbeats(conn: AsyncConnection, master: str, results: dict[str, float | None]) -> None:
    """One row per (master, coreapp): the round-trip in ms, or None when unanswered."""
    if not results:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO heartbeats (master, coreapp, last_ok_at, last_try_at, rtt_ms) "
            "VALUES (%(m)s, %(c)s, CASE WHEN %(rtt)s::float8 IS NULL THEN NULL ELSE now() END, now(), %(rtt)s) "
            "ON CONFLICT (master, coreapp) DO UPDATE SET last_try_at = now(), rtt_ms = EXCLUDED.rtt_ms, "
            "last_ok_at = COALESCE(EXCLUDED.last_ok_at, heartbeats.last_ok_at)",
            [{"m": master, "c": coreapp, "rtt": rtt} for coreapp, rtt in results.items()])


@dataclass(frozen=True)
class HeartbeatView:
    coreapp: str
    master: str
    since_ok: float | None    # seconds since the last answered heartbeat (None: never answered)


async def heartbeat_views(conn: AsyncConnection) -> list[HeartbeatView]:
    rows = await (await conn.execute(
        "SELECT coreapp, master, extract(epoch FROM now() - last_ok_at)::float8 FROM heartbeats")).fetchall()
    return [HeartbeatView(*row) for row in rows]

