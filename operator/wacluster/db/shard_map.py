"""The shard map: who owns which shard, fenced by the master term and the shard epoch.

Every write a master makes is conditional on the master_term row still holding *its* term, so a
deposed master's write changes nothing. Every write about one shard is conditional on the epoch
it read (compare-and-set). Coreapps hold a time lease (`lease_until`, database time) on their
shard and must renew it; a promotion only happens once that lease has expired.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection

from wacluster.api.interprocess import CHANNEL, NotifyKind


@dataclass(frozen=True)
class ShardRow:
    shard: int
    coreapp: str | None
    epoch: int
    master_term: int
    since: datetime
    lease_until: datetime
    revoked: bool
    lease_expired: bool
    reason: str = ""          # why the row last changed (a promotion, revocation or release)
    read_at: datetime | None = None  # the database's clock when the row was read


_SELECT = ("SELECT shard, coreapp, epoch, master_term, since, lease_until, revoked, "
           "lease_until <= now() AS lease_expired, reason, now() FROM shard_map")


async def read(conn: AsyncConnection) -> list[ShardRow]:
    rows = await (await conn.execute(_SELECT + " ORDER BY shard")).fetchall()
    return [ShardRow(*row) for row in rows]


async def read_term(conn: AsyncConnection) -> tuple[int, str] | None:
    """The master term last claimed and its holder; None before the first claim."""
    row = await (await conn.execute("SELECT term, holder FROM master_term WHERE id = 1")).fetchone()
    return (row[0], row[1]) if row else None


async def claim_term(conn: AsyncConnection, term: int, holder: str) -> bool:
    """Record `term` as the current master term; False when a newer term (or the same term of
    another holder) already exists. The stored term only grows, so claims are totally ordered."""
    row = await (await conn.execute(
        "INSERT INTO master_term (id, term, holder) VALUES (1, %(t)s, %(h)s) "
        "ON CONFLICT (id) DO UPDATE SET term = EXCLUDED.term, holder = EXCLUDED.holder, updated_at = now() "
        "WHERE master_term.term < EXCLUDED.term "
        "   OR (master_term.term = EXCLUDED.term AND master_term.holder = EXCLUDED.holder) "
        "RETURNING term", {"t": term, "h": holder})).fetchone()
    return row is not None


_FENCE = "EXISTS (SELECT 1 FROM master_term m WHERE m.term = %(term)s AND m.holder = %(holder)s)"


async def ensure_shards(conn: AsyncConnection, count: int, term: int, holder: str) -> bool:
    """Create rows 0..count-1 (unassigned) if missing; fenced."""
    cur = await conn.execute(
        "INSERT INTO shard_map (shard, master_term) SELECT s, %(term)s FROM generate_series(0, %(n)s - 1) s "
        f"WHERE {_FENCE} ON CONFLICT (shard) DO NOTHING",
        {"n": count, "term": term, "holder": holder})
    return cur.rowcount > 0


async def revoke(conn: AsyncConnection, shard: int, epoch: int, term: int, holder: str, reason: str) -> bool:
    """Tell the owner of (shard, epoch) to stop: it can no longer renew its lease."""
    cur = await conn.execute(
        "UPDATE shard_map SET revoked = true, reason = %(reason)s "
        f"WHERE shard = %(shard)s AND epoch = %(epoch)s AND NOT revoked AND {_FENCE}",
        {"shard": shard, "epoch": epoch, "term": term, "holder": holder, "reason": reason})
    return cur.rowcount == 1


async def promote(conn: AsyncConnection, shard: int, epoch: int, coreapp: str | None, lease_ttl: float,
                  term: int, holder: str, reason: str) -> int | None:
    """Give (shard) to `coreapp` with epoch+1 once the previous lease has expired, whoever it
    names: a row that names nobody can still carry a live lease (a renewal that a resize let
    through, before it took the row lock). Returns the new epoch, or None when the fence, the
    epoch or the lease said no."""
    async with conn.transaction():
        row = await (await conn.execute(
            "UPDATE shard_map SET coreapp = %(coreapp)s, epoch = epoch + 1, master_term = %(term)s, "
            "since = now(), lease_until = now() + make_interval(secs => %(ttl)s), revoked = false, "
            "reason = %(reason)s "
            "WHERE shard = %(shard)s AND epoch = %(epoch)s "
            f"  AND lease_until <= now() AND {_FENCE} "
            "RETURNING epoch, (SELECT coreapp FROM shard_map WHERE shard = %(shard)s)",
            {"shard": shard, "epoch": epoch, "coreapp": coreapp, "ttl": lease_ttl, "term": term,
             "holder": holder, "reason": reason})).fetchone()
        if row is None:
            return None
        await conn.execute(
            "INSERT INTO failovers (shard, from_coreapp, to_coreapp, epoch, reason) VALUES (%s, %s, %s, %s, %s)",
            (shard, row[1], coreapp, row[0], reason))
        await notify(conn, NotifyKind.SHARD_MAP, shard=shard, epoch=row[0], coreapp=coreapp)
        return row[0]


async def resize(conn: AsyncConnection, count: int, term: int, holder: str) -> bool:
    """Change the shard count once every shard's lease has expired (owners stopped); moves every
    unsent message (queued or claimed) onto its new shard. Fenced; all or nothing."""
    async with conn.transaction():
        fenced = await (await conn.execute(f"SELECT {_FENCE}", {"term": term, "holder": holder})).fetchone()
        # Locked before the check: a renewal in flight either committed first (its live lease
        # makes the map busy) or waits and then matches no row (the epoch moves on below).
        # Checked without the lock, a renewal committing in between left a live lease behind.
        await conn.execute("SELECT shard FROM shard_map ORDER BY shard FOR UPDATE")
        busy = await (await conn.execute(
            "SELECT count(*) FROM shard_map WHERE coreapp IS NOT NULL AND lease_until > now()")).fetchone()
        if not fenced[0] or busy[0]:
            return False
        await conn.execute("DELETE FROM shard_map WHERE shard >= %s", (count,))
        await conn.execute(
            "UPDATE shard_map SET coreapp = NULL, epoch = epoch + 1, master_term = %s, revoked = false, "
            "reason = 'resharded'", (term,))
        await conn.execute(
            "INSERT INTO shard_map (shard, master_term, epoch) SELECT s, %(term)s, 1 FROM generate_series(0, %(n)s - 1) s "
            "ON CONFLICT (shard) DO NOTHING", {"term": term, "n": count})
        # Claimed rows move too, still claimed by a session that has ended (every owner stopped):
        # the new shard's owner takes them from its backlog and asks the gateway before sending.
        # Left behind, a claimed row on a removed shard would never be sent.
        await conn.execute(
            "UPDATE messages SET shard = route_hash %% %s WHERE status IN ('queued', 'claimed')",
            (count,))
        await notify(conn, NotifyKind.SHARD_MAP, resized=count)
        return True


async def assignment(conn: AsyncConnection, coreapp: str) -> tuple[int, int, bool] | None:
    """(shard, epoch, revoked) of the shard the map most recently gave `coreapp`, or None.

    The most recent promotion, not the highest epoch: epochs count per shard, and a coreapp the
    master promoted to a new shard may still be named on its old one (an expired, unrevoked
    lease nobody has taken over yet). Taking the old one back would leave the new one unserved
    until its lease ran out."""
    row = await (await conn.execute(
        "SELECT shard, epoch, revoked FROM shard_map WHERE coreapp = %s ORDER BY since DESC, epoch DESC LIMIT 1",
        (coreapp,))).fetchone()
    return (row[0], row[1], row[2]) if row else None


async def renew_lease(conn: AsyncConnection, shard: int, epoch: int, coreapp: str, ttl: float) -> bool:
    """A coreapp extends its own lease; False means it no longer owns (shard, epoch)."""
    cur = await conn.execute(
        "UPDATE shard_map SET lease_until = now() + make_interval(secs => %(ttl)s) "
        "WHERE shard = %(shard)s AND epoch = %(epoch)s AND coreapp = %(coreapp)s AND NOT revoked",
        {"shard": shard, "epoch": epoch, "coreapp": coreapp, "ttl": ttl})
    return cur.rowcount == 1


async def release(conn: AsyncConnection, shard: int, epoch: int, coreapp: str, reason: str) -> bool:
    """Planned handoff: end our lease now and ask the primary master to move the shard."""
    cur = await conn.execute(
        "UPDATE shard_map SET lease_until = now(), revoked = true, reason = %(reason)s "
        "WHERE shard = %(shard)s AND epoch = %(epoch)s AND coreapp = %(coreapp)s",
        {"shard": shard, "epoch": epoch, "coreapp": coreapp, "reason": reason})
    if cur.rowcount == 1:
        await notify(conn, NotifyKind.HANDOFF, shard=shard, epoch=epoch, coreapp=coreapp)
    return cur.rowcount == 1


async def notify(conn: AsyncConnection, kind: NotifyKind, **details) -> None:
    payload = {"kind": kind.value, **details}
    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps(payload)))
