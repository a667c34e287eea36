"""What the Cloud driver writes to PostgreSQL about its sends, for one serving session: a send is
recorded as started before its HTTP call leaves (fenced like a claim: only this session's claims,
only while it owns the shard), then as delivered with its wamid, or failed together with the
on-premises `failed` status webhook (one transaction: a failed message always has its webhook)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from wacluster.db import messages as messages_db
from wacluster.db import webhooks as webhooks_db
from wacluster.db.messages import Claimer, SendState
from wacluster.domain.cloud_errors import OnPremError

if TYPE_CHECKING:
    from wacluster.runtime.coreapp.role import Coreapp


class CloudLedger:
    def __init__(self, coreapp: Coreapp, claimer: Claimer) -> None:
        self.coreapp = coreapp
        self.claimer = claimer

    async def start(self, ids: list[str]) -> list[str]:
        """Mark these sends started; the ids this session may send now."""
        async with self.coreapp.pool.connection() as conn:
            return await messages_db.mark_sending(conn, self.claimer, ids)

    async def sent(self, wamids: dict[str, str]) -> None:
        async with self.coreapp.pool.connection() as conn:
            await messages_db.mark_sent(conn, wamids, self.claimer.coreapp, self.claimer.epoch)

    async def failed(self, message_id: str, recipient: str, error: OnPremError) -> None:
        """End the message as failed and queue its status webhook in the on-premises shape."""
        event = {"statuses": [{"id": message_id, "recipient_id": recipient.lstrip("+"), "status": "failed",
                               "timestamp": str(int(time.time())), "errors": [error.as_status_error()]}]}
        async with self.coreapp.pool.connection() as conn:
            async with conn.transaction():
                if await messages_db.mark_failed(conn, message_id) and self.coreapp.settings.get("webhook_url"):
                    await webhooks_db.enqueue(conn, [event])

    async def states(self, ids: list[str], window: float) -> list[SendState]:
        async with self.coreapp.pool.connection() as conn:
            return await messages_db.send_states(conn, ids, window)
