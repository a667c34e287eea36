"""Deliver webhook events (inbound messages, delivery statuses) with retries and backoff.
Runs beside the API in every webapp; events are claimed in the database, so replicas share the
work and a slow or failing receiver delays only its own events, never message sending.

Every POST is signed (`X-Wacluster-Signature-256: sha256=<hex>`, HMAC-SHA256 of the raw body),
goes only to destinations the cluster allows (see destinations.py) and never follows a redirect:
a URL set through the API must not become a way into the cluster's own network."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from urllib.parse import urlsplit

import aiohttp
from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from wacluster.db import settings as settings_db
from wacluster.db import webhooks as webhooks_db
from wacluster.domain.webhook_destinations import Network
from wacluster.runtime.webapp.destinations import DestinationRefused, check_literal_host

log = logging.getLogger("wacluster.webapp")
WEBHOOKS = Counter("wacluster_webapp_webhooks_total", "Webhook deliveries by result.", ["result"])
MAX_BACKOFF = 300.0
SIGNATURE_HEADER = "X-Wacluster-Signature-256"


def signature(key: bytes, body: bytes) -> str:
    """The signature header's value; a receiver computes the same over the raw body and compares
    in constant time."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def backoff(attempt: int) -> float:
    return min(MAX_BACKOFF, 0.5 * 2 ** max(0, attempt - 1))


class WebhookDispatcher:
    def __init__(self, pool: AsyncConnectionPool, session: aiohttp.ClientSession, signing_key: bytes,
                 allowed: list[Network]) -> None:
        """`session` must resolve through AllowedDestinationsResolver with the same `allowed`."""
        self.pool, self.session = pool, session
        self.signing_key, self.allowed = signing_key, allowed

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
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(self.signing_key, body)}
        try:
            check_literal_host(urlsplit(url).hostname or "", self.allowed)
            async with self.session.post(url, data=body, headers=headers, allow_redirects=False,
                                         timeout=aiohttp.ClientTimeout(total=10)) as resp:
                if resp.status < 300:
                    async with self.pool.connection() as conn:
                        await webhooks_db.delivered(conn, event_id)
                    WEBHOOKS.labels(result="delivered").inc()
                    return
                error = (f"receiver redirected ({resp.status}); redirects are not followed" if resp.status < 400
                         else f"receiver answered {resp.status}")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            # The resolver's refusal reaches us wrapped in aiohttp's connection error.
            refused = exc if isinstance(exc, DestinationRefused) else getattr(exc, "os_error", None)
            if isinstance(refused, DestinationRefused):
                WEBHOOKS.labels(result="refused").inc()
                error = str(refused)
            else:
                error = f"receiver unreachable: {exc}"
        WEBHOOKS.labels(result="retry").inc()
        async with self.pool.connection() as conn:
            await webhooks_db.retry_later(conn, event_id, backoff(attempt), error)
