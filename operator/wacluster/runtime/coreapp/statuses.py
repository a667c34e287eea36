"""Delivery statuses and inbound notifications from the gateway become webhook events (durable; any
webapp posts them) in the on-premises shapes. The statuses the application settings turn off
(domain/status_webhooks.py) are dropped here, where the event is made, not at delivery: a status
nobody asked for is never stored, retried or dead-lettered, and the setting applies to the
statuses that happen after it changes, as the on-premises Coreapp applied it when it made callbacks."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from wacluster.db import webhooks as webhooks_db
from wacluster.domain.status_webhooks import wanted_payload

if TYPE_CHECKING:
    from wacluster.runtime.coreapp.role import Coreapp


class Statuses:
    def __init__(self, coreapp: Coreapp) -> None:
        self.coreapp = coreapp

    async def record(self, statuses: list[dict]) -> None:
        c = self.coreapp
        if not c.settings.get("webhook_url") or not statuses:
            return
        payload = wanted_payload({"statuses": [{"timestamp": str(int(time.time())), **s} for s in statuses]},
                                 c.settings)
        if payload is None:
            return
        try:
            async with c.pool.connection() as conn:
                await webhooks_db.enqueue(conn, [payload])
        except Exception as exc:
            c.log.warning("could not queue %d status webhook(s): %s", len(statuses), exc)

    async def record_inbound(self, payload: dict) -> bool:
        """An inbound notification of the gateway (a user's message, a status change, an error),
        already in the on-premises webhook shape, queued as one webhook event. True when it is
        durable or there is nowhere to send it (no webhook URL, as for statuses); False when it
        could not be stored, so the gateway keeps it and sends it again."""
        c = self.coreapp
        if not c.settings.get("webhook_url") or not payload:
            return True
        payload = wanted_payload(payload, c.settings)
        if payload is None:  # only statuses the settings turn off: nothing to send
            return True
        try:
            async with c.pool.connection() as conn:
                await webhooks_db.enqueue(conn, [payload])
        except Exception as exc:
            c.log.warning("could not queue an inbound webhook: %s", exc)
            return False
        return True
