"""Group concurrent sends per shard: one multi-row INSERT and one hand-off to the owner for every
message that arrived while the previous batch was in flight. Each message is still durable
before its own 201, and each still gets a 503 (and is withdrawn) if no owner answers in time (an
owner that is full counts as taking it: its backlog sends the stored rows, routing.py); the
withdrawal can lose to the owner's claim, and then the answer is 201 (handlers.py).

A message with an idempotency key is stored only if no row holds its key (db/messages.py, in the
same INSERT); otherwise its waiter gets KeyTaken and nothing is stored or handed over for it. Two
messages of one batch with the same key: the first is stored, the later ones are told the first
holds the key (it is still in flight)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool

from wacluster.db import messages as messages_db
from wacluster.db.messages import KeyHolder, Message
from wacluster.runtime.webapp.routing import Router

MAX_BATCH = 256


class KeyTaken(Exception):
    """Another message holds this one's idempotency key: this one was not stored."""

    def __init__(self, holder: KeyHolder) -> None:
        super().__init__(holder.id)
        self.holder = holder


@dataclass
class _Pending:
    message: Message
    route_hash: int
    accepted: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class ShardBatcher:
    def __init__(self, pool: AsyncConnectionPool, router: Router, deadline: float) -> None:
        self.pool, self.router, self.deadline = pool, router, deadline
        self.queues: dict[int, list[_Pending]] = {}
        self.flushers: dict[int, asyncio.Task] = {}

    async def submit(self, message: Message, route_hash: int) -> bool:
        """Store and hand over one message; True once the shard's owner accepted it."""
        pending = _Pending(message, route_hash)
        self.queues.setdefault(message.shard, []).append(pending)
        flusher = self.flushers.get(message.shard)
        if flusher is None or flusher.done():
            self.flushers[message.shard] = asyncio.create_task(self._flush(message.shard))
        return await pending.accepted

    async def _flush(self, shard: int) -> None:
        queue = self.queues[shard]
        while queue:
            batch = _first_per_key(queue[:MAX_BATCH])
            del queue[:MAX_BATCH]
            try:
                async with self.pool.connection() as conn:
                    taken = await messages_db.insert_many(conn, [(p.message, p.route_hash) for p in batch])
                stored = [p for p in batch if not (p.message.idempotency and p.message.idempotency.key in taken)]
                for p in batch:
                    if p.message.idempotency and p.message.idempotency.key in taken and not p.accepted.done():
                        p.accepted.set_exception(KeyTaken(taken[p.message.idempotency.key]))
                ok = (await self.router.deliver(shard, [p.message.id for p in stored], time.monotonic() + self.deadline)
                      if stored else True)
            except Exception as exc:  # the database is away: every waiter gets the error
                for p in batch:
                    if not p.accepted.done():
                        p.accepted.set_exception(exc)
                continue
            for p in stored:
                if not p.accepted.done():
                    p.accepted.set_result(ok)


def _first_per_key(batch: list[_Pending]) -> list[_Pending]:
    """The batch without the repeats of an idempotency key already in it (one INSERT cannot
    decide a key twice); each repeat is answered at once: the earlier message holds its key."""
    first: dict[str, _Pending] = {}
    kept = []
    for p in batch:
        idem = p.message.idempotency
        if idem is None:
            kept.append(p)
        elif idem.key in first:
            holder = first[idem.key].message
            p.accepted.set_exception(KeyTaken(KeyHolder(holder.id, holder.idempotency.fingerprint, "queued")))
        else:
            first[idem.key] = p
            kept.append(p)
    return kept
