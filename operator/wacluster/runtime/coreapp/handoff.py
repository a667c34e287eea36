"""The planned handoff: a serving coreapp drains what it holds, fences itself and releases its shard
(the primary master promotes a standby at once, no failure detection needed).

On SIGTERM it then waits a little for the successor to connect before it deregisters and exits.
Asked by the primary master for maintenance (it is fenced, or a switchover moves its shard), it
stands by again afterwards."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from wacluster.db import nodes as nodes_db
from wacluster.domain.coreapp_state import CoreappState as S
from wacluster.domain.maintenance import MAINTENANCE_RELEASE

if TYPE_CHECKING:
    from wacluster.runtime.coreapp.role import Coreapp

DRAIN_DEADLINE = 2.0
HANDOFF_DEADLINE = 10.0


def request_handoff(c: Coreapp, shard: int, epoch: int, reason: str) -> str | None:
    """Start a maintenance handoff of (shard, epoch) unless one runs; None when started or under
    way, else why not (this coreapp does not serve that shard at that epoch)."""
    if c.handing_off is not None and not c.handing_off.done():
        return None
    session = c.session
    if c.lifecycle.state is not S.SERVING or session is None or (session.shard, session.epoch) != (shard, epoch):
        serving = f"shard {session.shard} epoch {session.epoch}" if session is not None else "no shard"
        return f"{c.me.name} does not serve shard {shard} at epoch {epoch} ({c.lifecycle.state.value}, {serving})"
    # One task at a time, awaited by the SIGTERM handoff (planned_handoff) before it starts.
    c.handing_off = asyncio.create_task(maintenance_handoff(c, shard, epoch, reason), name="maintenance-handoff")
    return None


async def planned_handoff(c: Coreapp) -> None:
    if c.handing_off is not None:
        await asyncio.shield(c.handing_off)  # a maintenance handoff under way ends first (it never raises)
    try:
        async with c.pool.connection() as conn:
            await nodes_db.set_state(conn, c.me.name, stopping=True)
    except Exception as exc:
        c.log.warning("could not mark this coreapp as stopping: %s", exc)
    session = c.session
    if c.lifecycle.state is not S.SERVING or session is None:
        c.log.info("%s stopping; it served no shard", c.me.display)
        await _deregister(c)
        c.lifecycle.move(S.STOPPED, "stopped as a standby")
        return
    await drain_and_release(c, "it is shutting down (planned handoff)", "planned handoff")
    async with c.pool.connection() as conn:
        standbys = (await (await conn.execute(
            "SELECT count(*) FROM nodes WHERE role = 'coreapp' AND name <> %s AND NOT stopping "
            "AND db_heartbeat_at > now() - make_interval(secs => %s)",
            (c.me.name, float(c.settings["db_unhealthy_after"])))).fetchone())[0]
    if standbys == 0:
        c.log.warning("no standby coreapp to hand shard %d to; it stays unassigned", session.shard,
                      extra={"shard": session.shard, "epoch": session.epoch})
    else:
        await _wait_for_successor(c, session.shard, session.epoch)
    await _deregister(c)
    c.lifecycle.move(S.STOPPED, "handed its shard off")


async def drain_and_release(c: Coreapp, reason: str, release_reason: str) -> None:
    """Serving → draining → handing off, with the shard released in the database."""
    session = c.session
    # Drain: take nothing new, let what was taken reach the gateway and be recorded, so the
    # successor has nothing to resend.
    c.lifecycle.move(S.DRAINING, reason)
    session.link.stop_starting()  # the Cloud driver's paced queue goes to the successor, not through the drain
    try:
        await asyncio.wait_for(session.outbox.settled(), timeout=DRAIN_DEADLINE)
    except asyncio.TimeoutError:
        c.log.warning("%d message(s) still unsettled after %.0fs; the successor sends them",
                      session.outbox.unsettled, DRAIN_DEADLINE)
    await c.ownership.fence(reason)  # → handing off (or it already lost the shard meanwhile)
    await c.ownership.release(session, release_reason)


async def maintenance_handoff(c: Coreapp, shard: int, epoch: int, reason: str) -> None:
    """The primary master's request: hand (shard, epoch) off, then stand by again. Whatever
    fails half-way, the coreapp ends a standby: its lease is no longer renewed, so at worst the
    shard moves after the lease runs out instead of at once."""
    started = time.monotonic()
    try:
        await drain_and_release(c, f"the primary master asked for a handoff: {reason}", f"{MAINTENANCE_RELEASE}{reason}")
        c.log.info("handed shard %d (epoch %d) off in %.3fs: %s", shard, epoch, time.monotonic() - started, reason,
                   extra={"shard": shard, "epoch": epoch})
    except Exception as exc:
        c.log.warning("the handoff of shard %d did not complete (%s); its lease runs out instead", shard, exc,
                      extra={"shard": shard, "epoch": epoch})
        await c.ownership.fence(f"the handoff failed: {exc}")
    finally:
        if c.lifecycle.state is S.HANDING_OFF:
            c.lifecycle.move(S.STANDBY, f"handed shard {shard} off; standing by")
        c.wake.set()


async def _wait_for_successor(c: Coreapp, shard: int, epoch: int) -> None:
    started = time.monotonic()
    while time.monotonic() - started < HANDOFF_DEADLINE:
        async with c.pool.connection() as conn:
            row = await (await conn.execute(
                "SELECT s.coreapp, s.epoch, n.gateway_status FROM shard_map s "
                "LEFT JOIN nodes n ON n.name = s.coreapp WHERE s.shard = %s", (shard,))).fetchone()
        if row and row[1] > epoch and row[2] == "connected":
            c.log.info("handed shard %d to %s (epoch %d) in %.3fs", shard, row[0], row[1], time.monotonic() - started,
                       extra={"shard": shard, "epoch": row[1]})
            return
        await asyncio.sleep(0.02)
    c.log.warning("no successor connected shard %d within %.0fs; exiting anyway", shard, HANDOFF_DEADLINE)


async def _deregister(c: Coreapp) -> None:
    try:
        async with c.pool.connection() as conn:
            await nodes_db.remove(conn, c.me.name)
    except Exception as exc:
        c.log.warning("could not remove the node record: %s", exc)
