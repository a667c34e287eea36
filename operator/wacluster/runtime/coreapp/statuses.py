"""Delivery statuses from the gateway become webhook events (durable; any webapp posts them)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from wacluster.db import webhooks as webhooks_db

if TYPE_CHECKING:
    from wacluster.runtime.coreapp.role import Coreapp


class Statuses:
    def __init__(self, coreapp: Coreapp) -> None:
        self.coreapp = coreapp

    async def record(self, statuses: list[dict]) -> None:
        c = self.coreapp
        if not c.settings.get("webhook_url") or not statuses:
            return
        session = c.session
        try:
            async with c.pool.connection() as conn:
                await webhooks_db.enqueue(conn, [{"statuses": [
                    {**s, "timestamp": str(int(time.time())), "shard": session.shard if session else None}
                    for s in statuses]}])
        except Exception as exc:
            c.log.warning("could not queue %d status webhook(s): %s", len(statuses), exc)
