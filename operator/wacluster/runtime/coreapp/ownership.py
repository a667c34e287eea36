"""The shard lease and self-fencing: taking a shard over, keeping its lease renewed, and letting it
go the moment the lease is in doubt (see `domain/fencing.py` for the timing argument).

A *session* is one uninterrupted stretch of serving one shard at one epoch over one gateway
connection; it starts when the takeover succeeds and ends at the fence. Its id marks the rows it
claims in the database, so the next session (or the next owner) can tell claims nobody holds any
more from claims still in hand.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wacluster.db import nodes as nodes_db
from wacluster.db import shard_map
from wacluster.db.messages import Claimer
from wacluster.domain.coreapp_state import CoreappState as S
from wacluster.domain.fencing import ShardLease
from wacluster.runtime import metrics
from wacluster.runtime.coreapp.outbox import Outbox
from wacluster.runtime.gateway import Gateway

if TYPE_CHECKING:
    from wacluster.runtime.coreapp.role import Coreapp

WATCHDOG_TICK = 0.05


@dataclass
class Session:
    shard: int
    epoch: int
    lease: ShardLease
    link: Gateway
    outbox: Outbox
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def claimer(self, coreapp: str) -> Claimer:
        return Claimer(coreapp, self.shard, self.epoch, self.id)


class Ownership:
    def __init__(self, coreapp: Coreapp) -> None:
        self.coreapp = coreapp
        # (shard, epoch) pairs the gateway replaced: reconnecting with one would be a conflict.
        self.given_up: set[tuple[int, int]] = set()
        self.renew_now = asyncio.Event()
        self.session_started = asyncio.Event()

    # --- taking a shard ------------------------------------------------------------------------------

    async def take(self, shard: int, epoch: int, phone: str) -> None:
        """Standby → serving: confirm the lease, connect, record the connection. Any failure
        leaves it a standby again (the next decision cycle may retry)."""
        c = self.coreapp
        c.lifecycle.move(S.TAKING_OVER, f"promoted to shard {shard} (epoch {epoch})")
        link: Gateway | None = None
        try:
            ttl = c.wanted_ttl()
            lease = ShardLease(shard, epoch, ttl)
            sent = time.monotonic()
            async with c.pool.connection() as conn:
                if not await shard_map.renew_lease(conn, shard, epoch, c.me.name, ttl):
                    return self._back_to_standby(f"promotion to shard {shard} (epoch {epoch}) was withdrawn "
                                                 "before it started")
            lease.confirmed(sent, c.clock.bound())
            session_id = uuid.uuid4().hex  # the Cloud driver marks its sends with the session's claims
            opened = c.gateway_for(shard, epoch, phone, session_id,
                                   on_closed=lambda reason: self._link_closed(opened, shard, epoch, reason))
            link = opened  # closed below unless a session takes it
            try:
                # Bounded by the lease: a handshake still running when the lease ends could
                # reach the gateway after a successor connected.
                await asyncio.wait_for(link.open(), timeout=max(0.0, lease.remaining(time.monotonic())))
            except Exception as exc:  # whatever the gateway answers, a standby stays a standby
                reason = "the lease ran out first" if isinstance(exc, asyncio.TimeoutError) else exc
                return self._back_to_standby(f"could not connect shard {shard} to the gateway: {reason}")
            if not lease.valid(time.monotonic()):
                return self._back_to_standby(f"took too long to connect shard {shard}; giving it back")
            await c.record_gateway_status(link)  # connected, or paused (the Cloud API refuses the account)
            if link.closed_reason:
                return self._back_to_standby(f"the gateway closed shard {shard}'s new connection: {link.closed_reason}")
            session = Session(shard, epoch, lease, link, Outbox(c.config.outbox_capacity), session_id)
            c.session = session
            link = None  # the session owns it now
            c.lifecycle.move(S.SERVING, f"connected shard {shard} (epoch {epoch})")
        finally:
            if link is not None:
                await link.close()
            if c.lifecycle.state is S.TAKING_OVER:  # failed or cancelled half-way
                c.lifecycle.move(S.STANDBY, f"the takeover of shard {shard} did not complete")
        metrics.COREAPP_SERVING.set(1)
        metrics.SHARD_EPOCH.labels(shard=str(shard)).set(epoch)
        self.session_started.set()
        self.renew_now.set()  # the renewal loop may still be waiting out the previous session's period
        c.backlog.wake()
        c.say(f"serving shard {shard} (epoch {epoch})")

    def _back_to_standby(self, sentence: str) -> None:
        self.coreapp.lifecycle.move(S.STANDBY, sentence)
        self.coreapp.say(sentence)

    async def _link_closed(self, link: Gateway, shard: int, epoch: int, reason: str) -> None:
        if "replaced" in reason or "banned" in reason:
            self.given_up.add((shard, epoch))
        session = self.coreapp.session
        if session is not None and session.link is link:
            await self.fence(reason)

    # --- letting it go -------------------------------------------------------------------------------

    async def fence(self, reason: str) -> None:
        """Stop serving now: end the session (refuse, send nothing more), drop the gateway
        connection. Whatever was in hand stays claimed in the database for the next session or
        owner (maybe this coreapp again)."""
        c = self.coreapp
        session = c.session
        if session is None or not c.lifecycle.holds_shard:
            return
        c.session = None
        self.session_started.clear()
        c.lifecycle.move(S.STANDBY if c.lifecycle.state is S.SERVING else S.HANDING_OFF, reason)
        metrics.COREAPP_SERVING.set(0)
        session.outbox.close()
        await session.link.close()
        c.say(f"stopped serving shard {session.shard} because {reason}", shard=session.shard, epoch=session.epoch)
        try:
            async with c.pool.connection() as conn:
                await nodes_db.set_state(conn, c.me.name, gateway_status="disconnected", error=None)
        except Exception as exc:
            c.log.warning("could not record the disconnection: %s", exc)

    # --- keeping it ----------------------------------------------------------------------------------

    async def current(self) -> Session:
        """The serving session, once there is one."""
        while self.coreapp.session is None:
            await self.session_started.wait()
        return self.coreapp.session

    async def watchdog(self) -> None:
        """Fence the moment the lease runs out by this process's own clock, reachable or not."""
        c = self.coreapp
        while True:
            session = c.session
            if session is not None and not session.lease.valid(time.monotonic()):
                await self.fence("its shard lease ran out before it could be renewed")
            await asyncio.sleep(WATCHDOG_TICK)

    async def renew_loop(self) -> None:
        """Renew the serving session's lease every third of its ttl (and at once when the
        interval settings change)."""
        c = self.coreapp
        while True:
            session = await self.current()
            lease = session.lease
            # Interval settings apply live: the next renewal already uses the new lease length.
            lease.ttl = c.wanted_ttl()
            sent = time.monotonic()
            try:
                async with c.pool.connection(timeout=lease.remaining(sent) or 0.1) as conn:
                    still_ours = await shard_map.renew_lease(conn, lease.shard, lease.epoch, c.me.name, lease.ttl)
            except Exception as exc:
                c.log.warning("lease renewal failed: %s", exc)
                still_ours = None
            if still_ours is False and c.session is session:
                await self.fence("the master revoked its shard")
            elif still_ours:
                lease.confirmed(sent, c.clock.bound())
            else:
                lease.in_doubt(sent, c.clock.bound())
            self.renew_now.clear()
            try:
                await asyncio.wait_for(self.renew_now.wait(), timeout=lease.renew_every)
            except asyncio.TimeoutError:
                pass

    async def release(self, session: Session, reason: str) -> None:
        """End our lease in the database now and ask the primary master to move the shard."""
        async with self.coreapp.pool.connection() as conn:
            await shard_map.release(conn, session.shard, session.epoch, self.coreapp.me.name, reason)
