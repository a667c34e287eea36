"""Group concurrent sends per shard: one multi-row INSERT and one hand-off to the owner for every
message that arrived while the previous batch was in flight. Each message is still durable
before its own 201, and each still gets a 503 (and is withdrawn) if no owner takes it in time;
the withdrawal can lose to the owner's claim, and then the answer is 201 (handlers.py)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool

from wacluster.db import messages as messages_db
from wacluster.db.messages import Message
from wacluster.runtime.webapp.routing import Router

MAX_BATCH = 256


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
            batch = queue[:MAX_BATCH]
            del queue[:MAX_BATCH]
            try:
                async with self.pool.connection() as conn:
                    await messages_db.insert_many(conn, [(p.message, p.route_hash) for p in batch])
                ok = await self.router.deliver(shard, [p.message.id for p in batch], time.monotonic() + self.deadline)
            except Exception as exc:  # the database is away: every waiter gets the error
                for p in batch:
                    if not p.accepted.done():
                        p.accepted.set_exception(exc)
                continue
            for p in batch:
                if not p.accepted.done():
                    p.accepted.set_result(ok)
