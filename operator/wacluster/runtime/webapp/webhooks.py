"""Deliver webhook events (inbound messages, delivery statuses) with retries and backoff.
Runs beside the API in every webapp; events are claimed in the database, so replicas share the
work and a slow or failing receiver delays only its own events, never message sending."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from wacluster.db import settings as settings_db
from wacluster.db import webhooks as webhooks_db

log = logging.getLogger("wacluster.webapp")
WEBHOOKS = Counter("wacluster_webapp_webhooks_total", "Webhook deliveries by result.", ["result"])
MAX_BACKOFF = 300.0


def backoff(attempt: int) -> float:
    return min(MAX_BACKOFF, 0.5 * 2 ** max(0, attempt - 1))


class WebhookDispatcher:
    def __init__(self, pool: AsyncConnectionPool, session: aiohttp.ClientSession) -> None:
        self.pool, self.session = pool, session

    async def run(self) -> None:
        while True:
            try:
                worked = await self.dispatch_once()
            except Exception as exc:
                log.warning("webhook dispatch failed: %s", exc)
                worked = False
            await asyncio.sleep(0.05 if worked else 0.5)

    async def dispatch_once(self) -> bool:
        async with self.pool.connection() as conn:
            url = (await settings_db.read_all(conn)).get("webhook_url")
            if not url:
                return False
            events = await webhooks_db.claim_due(conn, limit=50, lock_seconds=30)
        if not events:
            return False
        await asyncio.gather(*(self._post(url, *event) for event in events))
        return True

    async def _post(self, url: str, event_id: int, payload: dict, attempt: int) -> None:
        try:
            async with self.session.post(url, json=payload, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                if resp.status < 300:
                    async with self.pool.connection() as conn:
                        await webhooks_db.delivered(conn, event_id)
                    WEBHOOKS.labels(result="delivered").inc()
                    return
                error = f"receiver answered {resp.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            error = f"receiver unreachable: {exc}"
        WEBHOOKS.labels(result="retry").inc()
        async with self.pool.connection() as conn:
            await webhooks_db.retry_later(conn, event_id, backoff(attempt), error)
