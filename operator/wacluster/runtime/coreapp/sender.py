"""Sending: the serving session's outbox to the gateway, batch by batch, and the gateway's acks
back to the database.

Two supervised tasks. The sender takes a batch, checks that the session is still the serving one
with a valid lease, and writes it to the connection; a write that fails ends the session (fence:
a connection that failed once cannot be trusted) and the batch's fate is left to the backlog scan.
The ack recorder waits for each batch's ack, at most `ack_timeout` after it was sent, and marks
the acknowledged messages delivered as acks come in (several batches in one statement when their
acks are in together; a batch whose ack is late holds up no other).
A batch with no ack in time, or whose recording failed, is *lost*: the backlog scan asks the
gateway which of its messages arrived and sends the rest again. Nothing is ever dropped silently.
A driver that settles every message itself (the Cloud API's: it paces and retries until each is
delivered or failed, and records both) has no ack deadline: its batch ends when its messages do,
or when the session ends.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wacluster.db import messages as messages_db
from wacluster.runtime import metrics
from wacluster.runtime.coreapp.outbox import Claimed, OutboxClosed
from wacluster.runtime.gateway_link import GatewayClosed

if TYPE_CHECKING:
    from wacluster.runtime.coreapp.ownership import Session
    from wacluster.runtime.coreapp.role import Coreapp

SEND_BATCH = 200


@dataclass
class _Sent:
    session: Session
    ids: list[str]
    ack: asyncio.Future
    deadline: float  # monotonic


class Sender:
    def __init__(self, coreapp: Coreapp) -> None:
        self.coreapp = coreapp
        self._sending: tuple[Session, list[str]] | None = None
        self._sent: list[_Sent] = []
        self._sent_ready = asyncio.Event()  # a batch was sent or acknowledged

    # --- the sender task -----------------------------------------------------------------------------

    async def run(self) -> None:
        c = self.coreapp
        while True:
            session = await c.ownership.current()
            try:
                batch = await session.outbox.next_batch(SEND_BATCH)
            except OutboxClosed:
                continue  # the session ended; wait for the next one
            self._sending = (session, [m.id for m in batch])
            await self._send(session, batch)
            self._sending = None

    async def _send(self, session: Session, batch: list[Claimed]) -> None:
        c = self.coreapp
        ids = [m.id for m in batch]
        if not (c.session is session and c.lifecycle.sends and session.lease.valid(time.monotonic())):
            session.outbox.lose(ids)  # not ours to send now; they stay claimed in the database
            return
        try:
            ack = await session.link.send([m.frame() for m in batch])
        except GatewayClosed as exc:
            session.outbox.lose(ids)
            if c.session is session:
                await c.ownership.fence(f"the gateway connection failed while sending ({exc})")
            return
        wait = math.inf if session.link.settles_itself else c.config.ack_timeout
        self._sent.append(_Sent(session, ids, ack, time.monotonic() + wait))
        ack.add_done_callback(lambda _: self._sent_ready.set())
        self._sent_ready.set()

    def sender_failed(self, exc: BaseException | None) -> None:
        """The supervisor's clean-up: the batch being sent when the sender failed is lost."""
        if self._sending is not None:
            session, ids = self._sending
            session.outbox.lose(ids)
            self._sending = None
            self.coreapp.backlog.wake()

    # --- the ack recorder task -------------------------------------------------------------------------

    async def record_acks(self) -> None:
        while True:
            self._sent_ready.clear()
            now = time.monotonic()
            resolved = [item for item in self._sent if item.ack.done() or item.deadline <= now]
            if resolved:
                self._sent = [item for item in self._sent if not (item.ack.done() or item.deadline <= now)]
                await self._record(resolved)
                continue
            timeout = min(item.deadline for item in self._sent) - now if self._sent else None
            timeout = None if timeout == math.inf else timeout
            try:
                await asyncio.wait_for(self._sent_ready.wait(), timeout=timeout)
            except asyncio.TimeoutError:
                pass

    async def _record(self, resolved: list[_Sent]) -> None:
        c = self.coreapp
        acked: dict[int, tuple[Session, list[str]]] = {}  # per session: what the gateway acknowledged
        for item in resolved:
            if not item.ack.done():
                item.session.link.abandon(item.ack)
            outcome = _outcome(item.ack, c.config.ack_timeout)
            if isinstance(outcome, str):
                c.log.warning("%d message(s) sent on shard %d have no ack (%s); the backlog scan will ask the "
                              "gateway and send what it lacks", len(item.ids), item.session.shard, outcome)
                item.session.outbox.lose(item.ids)
                continue
            wanted = set(item.ids)
            got = [i for i in outcome if i in wanted]
            missing = wanted.difference(got)
            if missing:
                item.session.outbox.lose(missing)
            acked.setdefault(id(item.session), (item.session, []))[1].extend(got)
        for session, ids in acked.values():
            try:
                async with c.pool.connection() as conn:
                    await messages_db.mark_delivered(conn, ids, c.me.name, session.epoch)
            except Exception as exc:  # the database is away: the scan records them later
                c.log.warning("could not record %d delivered message(s): %s", len(ids), exc)
                session.outbox.lose(ids)
                continue
            metrics.MESSAGES_SENT.inc(len(ids))
            session.outbox.settle(ids)
        if any(item.session.outbox.has_lost for item in resolved):
            c.backlog.wake()

    def acks_failed(self, exc: BaseException | None) -> None:
        """The supervisor's clean-up: what awaited its ack is lost (the scan asks the gateway)."""
        sent, self._sent = self._sent, []
        for item in sent:
            item.session.outbox.lose(item.ids)
        self.coreapp.backlog.wake()


def _outcome(ack: asyncio.Future, timeout: float) -> list[str] | str:
    """The acked ids, or why there are none."""
    if ack.cancelled():
        return f"no ack within {timeout:g}s"
    if ack.exception() is not None:
        return str(ack.exception())
    return ack.result()
