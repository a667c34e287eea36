"""What a serving coreapp holds in hand: the messages it claimed in the database and has not yet
seen acknowledged by the gateway, queued to send or sent and awaiting their ack.

Bounded: a claim first reserves room (`reserve`), takes what it claimed in hand (`put`) and then
gives the reservation back (`unreserve`), so the hand-off from webapps and the backlog
scan together never hold more than `capacity` messages. A webapp finding no room gets a 503; its
rows stay queued in the database and the owner's backlog scan sends them as room frees (the
webapp answers its client 201: the message is stored and the shard has a live owner). From the
first refusal until the backlog is drained the outbox *overflows*: every hand-off is refused, so
everything goes through the backlog in the order it was stored. The overflow ends only after a
backlog pass during which nothing was refused: a row refused during a pass may lie behind the
pass's last page, and a hand-off accepted before the next pass took it would overtake it. Messages whose fate is unknown
(their send failed, their ack never came) are *lost*: no longer in hand, still claimed in the
database, and re-examined by the backlog scan, which asks the gateway before sending them again.
An outbox belongs to one serving session; `close` drops everything in hand (it all stays claimed
in the database, where the next session or owner finds it).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable


@dataclass(frozen=True)
class Claimed:
    """A message this coreapp claimed: what it sends (read from the database, not from a webapp)."""

    id: str
    to: str
    body: dict[str, Any]

    def frame(self) -> dict[str, Any]:
        return {"id": self.id, "to": self.to, "body": self.body}


class OutboxClosed(Exception):
    """The session this outbox belonged to has ended."""


class Outbox:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("an outbox holds at least one message")
        self.capacity = capacity
        self._queue: deque[Claimed] = deque()
        self._in_hand: set[str] = set()
        self._reserved = 0
        self._lost: set[str] = set()
        self.closed = False
        self.overflowing = False         # hand-offs wait in the database until the backlog is drained
        self.refusals = 0                # hand-offs refused so far (a backlog pass compares)
        self._ready = asyncio.Event()    # something to send, or closed
        self._room = asyncio.Event()     # room for a claim, or closed
        self._settled = asyncio.Event()  # nothing in hand, or closed
        self._settled.set()

    # --- room ------------------------------------------------------------------------------------

    @property
    def free(self) -> int:
        return max(0, self.capacity - len(self._in_hand) - self._reserved)

    @property
    def unsettled(self) -> int:
        """Messages in hand: queued here or sent and awaiting their ack."""
        return len(self._in_hand)

    def reserve(self, count: int) -> bool:
        """Room for `count` more, all or nothing (the hand-off of one webapp batch)."""
        if self.closed or count > self.free:
            return False
        self._reserved += count
        self._changed()
        return True

    def reserve_up_to(self, count: int) -> int:
        """Room for as many as possible of `count` (a backlog page); how many were reserved."""
        granted = 0 if self.closed else min(count, self.free)
        self._reserved += granted
        self._changed()
        return granted

    def unreserve(self, count: int) -> None:
        self._reserved = max(0, self._reserved - count)
        self._changed()

    def refuse(self) -> None:
        """A hand-off was left in the database: overflowing until the backlog has taken it."""
        self.overflowing = True
        self.refusals += 1

    async def wait_room(self) -> None:
        """Until a claim could reserve room; raises OutboxClosed when the session ends."""
        while not self.closed and self.free == 0:
            self._room.clear()
            await self._room.wait()
        if self.closed:
            raise OutboxClosed()

    # --- in hand ---------------------------------------------------------------------------------

    def put(self, messages: Iterable[Claimed]) -> int:
        """Take claimed messages in hand, queued to send (the claimer then gives back the room it
        reserved for them); how many were new to this outbox."""
        added = 0
        if not self.closed:
            for message in messages:
                if message.id in self._in_hand:
                    continue
                self._lost.discard(message.id)
                self._in_hand.add(message.id)
                self._queue.append(message)
                added += 1
        self._changed()
        return added

    def holds(self, message_id: str) -> bool:
        return message_id in self._in_hand

    async def next_batch(self, limit: int) -> list[Claimed]:
        """Up to `limit` messages to send, once there is one; they stay in hand until settled or
        lost. Raises OutboxClosed when the session ends."""
        while not self.closed and not self._queue:
            self._ready.clear()
            await self._ready.wait()
        if self.closed:
            raise OutboxClosed()
        batch = []
        while self._queue and len(batch) < limit:
            batch.append(self._queue.popleft())
        self._changed()
        return batch

    def settle(self, ids: Iterable[str]) -> None:
        """These are recorded as delivered: no longer in hand."""
        self._in_hand.difference_update(ids)
        self._changed()

    def lose(self, ids: Iterable[str]) -> None:
        """Their fate is unknown (send failed, no ack, not recorded): out of hand, to be examined
        again by the backlog scan."""
        if self.closed:
            return
        for message_id in ids:
            self._in_hand.discard(message_id)
            self._lost.add(message_id)
        self._changed()

    def take_lost(self) -> set[str]:
        lost, self._lost = self._lost, set()
        return lost

    @property
    def has_lost(self) -> bool:
        return bool(self._lost)

    async def settled(self) -> None:
        """Until nothing is in hand (or the session ended)."""
        while not self.closed and self._in_hand:
            self._settled.clear()
            await self._settled.wait()

    def close(self) -> None:
        """The session ended: drop everything (it stays claimed in the database) and wake waiters."""
        self.closed = True
        self._queue.clear()
        self._in_hand.clear()
        self._lost.clear()
        self._reserved = 0
        self._changed()

    def _changed(self) -> None:
        if self._queue or self.closed:
            self._ready.set()
        if self.free > 0 or self.closed:
            self._room.set()
        if not self._in_hand or self.closed:
            self._settled.set()
