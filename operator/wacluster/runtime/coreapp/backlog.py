"""The owner keeps its shard's backlog drained: every message stored for the shard and not yet
delivered is eventually sent, whoever stored it, whenever, and whatever got lost on the way.

A scan runs when a session starts, when something was lost (no ack, a failed send or recording),
and every `backlog_interval` seconds. It pages through the shard's unsettled rows in (created_at,
id) order, a page at a time and only as fast as the outbox has room, so no backlog is too large
and nothing is dropped: rows still queued (a webapp's hand-off that never arrived, a row moved
here by a re-partition), rows claimed by a session that ended (this coreapp's before a fence, a
predecessor's), and this session's own claims it lost track of. It claims them (the same
atomic check as the hand-off: still unsettled, this shard, this owner at this epoch), asks the
gateway on the live connection which of them it already has, records those as delivered, and
sends the rest.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg

from wacluster.db import messages as messages_db
from wacluster.db.messages import Claimer, Message
from wacluster.runtime.coreapp.outbox import Claimed, OutboxClosed
from wacluster.runtime.gateway_link import GatewayClosed

if TYPE_CHECKING:
    from wacluster.runtime.coreapp.ownership import Session
    from wacluster.runtime.coreapp.role import Coreapp


@dataclass
class _Pass:
    to_send: int = 0
    already_sent: int = 0


class Backlog:
    def __init__(self, coreapp: Coreapp) -> None:
        self.coreapp = coreapp
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Scan again now (something was lost, or a session started)."""
        self._wake.set()

    async def run(self) -> None:
        c = self.coreapp
        while True:
            session = await c.ownership.current()
            self._wake.clear()
            try:
                await self.drain(session)
            except (GatewayClosed, OutboxClosed):
                pass  # the session ended; the next one scans again
            except (psycopg.Error, OSError, TimeoutError) as exc:
                c.log.warning("could not scan the backlog of shard %d (%s); trying again", session.shard, exc)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=c.config.backlog_interval)
            except asyncio.TimeoutError:
                pass

    async def drain(self, session: Session) -> None:
        """One pass over the shard's backlog."""
        c = self.coreapp
        claimer = session.claimer(c.me.name)
        done = _Pass()
        lost = sorted(session.outbox.take_lost())
        try:
            while lost and self._may_claim(session):
                await session.outbox.wait_room()
                granted = session.outbox.reserve_up_to(min(c.config.backlog_page, len(lost)))
                chunk, lost = lost[:granted], lost[granted:]
                try:
                    await self._claim_and_hand(session, claimer, chunk, chunk, done)
                finally:
                    session.outbox.unreserve(granted)
        finally:
            session.outbox.lose(lost)  # not examined in this pass: the next one does
        after = None
        overflowing = session.outbox.overflowing  # hand-offs refused since: this pass must reach them
        refusals = session.outbox.refusals
        drained = False
        while self._may_claim(session):
            await session.outbox.wait_room()
            granted = session.outbox.reserve_up_to(c.config.backlog_page)
            try:
                async with c.pool.connection() as conn:
                    page = await messages_db.unsettled(conn, claimer, after, granted, c.config.stale_claim_after)
                if not page:
                    drained = True
                    break
                after = (page[-1].created_at, page[-1].id)
                candidates = [row for row in page if not session.outbox.holds(row.id)]
                await self._claim_and_hand(session, claimer, [row.id for row in candidates],
                                           [row.id for row in candidates if row.mine], done)
            finally:
                session.outbox.unreserve(granted)
            if len(page) < granted:
                drained = True
                break
        if drained and overflowing and session.outbox.overflowing:
            if session.outbox.refusals == refusals:
                # Every row refused was refused before this pass began, so stored before it: in hand.
                session.outbox.overflowing = False
            else:
                # A row refused during the pass may lie behind its last page: still overflowing (a
                # hand-off accepted now could overtake it), and one more pass picks it up.
                self.wake()
        if done.to_send or done.already_sent:
            c.say(f"backlog of shard {session.shard}: {done.to_send} message(s) to send, "
                  f"{done.already_sent} already sent by the previous owner", always=True)

    def _may_claim(self, session: Session) -> bool:
        c = self.coreapp
        return c.session is session and c.lifecycle.accepts_messages

    async def _claim_and_hand(self, session: Session, claimer: Claimer, ids: list[str], mine: list[str],
                              done: _Pass) -> None:
        c = self.coreapp
        if not ids:
            return
        async with c.pool.connection() as conn:
            claimed = await messages_db.reclaim(conn, claimer, ids, mine)
        if claimed:
            await self._hand(session, claimed, done)

    async def _hand(self, session: Session, claimed: list[Message], done: _Pass) -> None:
        """Any of these may have reached the gateway before: ask it first, on our live connection
        (after which no earlier connection can send anything)."""
        c = self.coreapp
        ids = [m.id for m in claimed]
        try:
            known = await asyncio.wait_for(session.link.already_delivered(ids), timeout=c.config.ack_timeout)
            if known:
                async with c.pool.connection() as conn:
                    await messages_db.mark_delivered(conn, sorted(known), c.me.name, session.epoch)
        except BaseException:
            session.outbox.lose(ids)  # claimed by this session, not in hand: the next pass
            raise
        session.outbox.put(Claimed(m.id, m.recipient, m.body) for m in claimed if m.id not in known)
        done.to_send += len(claimed) - len(known)
        done.already_sent += len(known)
