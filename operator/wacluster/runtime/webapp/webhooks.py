"""Deliver webhook events (inbound messages, delivery statuses) with bounded retries.
Runs beside the API in every webapp; events are claimed in the database, so replicas share the
work and a slow or failing receiver delays only its own events, never message sending.

A failed attempt is retried after an exponential backoff with jitter, from
`callback_backoff_delay_ms` doubling up to `max_callback_backoff_delay_ms` (the on-premises
settings). An event still undelivered `webhook_dead_after_seconds` after it was queued is dead:
never retried, counted in `wacluster_webhook_events_dead_total`, kept for replay (README).
The bound is an age, not a number of attempts: what a receiver down for a night needs does not
depend on the backoff settings.

Every POST is signed (`X-Wacluster-Signature-256: sha256=<hex>`, HMAC-SHA256 of the raw body),
goes only to destinations the cluster allows (see destinations.py) and never follows a redirect:
a URL set through the API must not become a way into the cluster's own network. An HTTPS receiver's
certificate is verified against the system CAs plus the uploaded webhook CA (webhook_trust.py)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from wacluster.db import settings as settings_db
from wacluster.db import webhooks as webhooks_db
from wacluster.domain.webhook_destinations import Network
from wacluster.runtime import metrics
from wacluster.runtime.webapp.destinations import DestinationRefused, check_literal_host
from wacluster.runtime.webapp.webhook_trust import WebhookTrust

log = logging.getLogger("wacluster.webapp")
WEBHOOKS = Counter("wacluster_webapp_webhooks_total", "Webhook deliveries by result.", ["result"])
BACKLOG_EVERY = 15.0  # seconds between counts of the backlog (and dead-lettering of unattempted events)
SIGNATURE_HEADER = "X-Wacluster-Signature-256"


def signature(key: bytes, body: bytes) -> str:
    """The signature header's value; a receiver computes the same over the raw body and compares
    in constant time."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt `attempt` (1, 2, ...): half of min(cap, base * 2^(attempt-1))
    plus a random part of the other half, so retries of many events never beat in step."""
    full = min(cap, base * 2 ** min(max(0, attempt - 1), 62))
    return full / 2 + (rng or random).random() * full / 2


class WebhookDispatcher:
    def __init__(self, pool: AsyncConnectionPool, session: aiohttp.ClientSession, signing_key: bytes,
                 allowed: list[Network]) -> None:
        """`session` must resolve through AllowedDestinationsResolver with the same `allowed`."""
        self.pool, self.session = pool, session
        self.signing_key, self.allowed = signing_key, allowed
        self.backlog_counted = 0.0
        self.trust = WebhookTrust()

    async def run(self) -> None:
        while True:
            try:
                if time.monotonic() - self.backlog_counted >= BACKLOG_EVERY:
                    await self.refresh_backlog()
                worked = await self.dispatch_once()
            except Exception as exc:
                log.warning("webhook dispatch failed: %s", exc)
                worked = False
            await asyncio.sleep(0.05 if worked else 0.5)

    async def dispatch_once(self) -> bool:
        async with self.pool.connection() as conn:
            settings = await settings_db.read_all(conn)
            url = settings.get("webhook_url")
            if not url:
                return False
            events = await webhooks_db.claim_due(conn, limit=50, lock_seconds=30)
            tls = await self.trust.refresh(conn) if events else None
        if not events:
            return False
        retry = RetryPolicy.from_settings(settings)
        outcomes = await asyncio.gather(*(self._post(url, retry, tls, *event) for event in events))
        # One commit for the round's deliveries: one per event made a durable database the limit
        # (about 10 events a second reached a receiver under load while 150 a second came in).
        delivered = [event[0] for event, ok in zip(events, outcomes) if ok]
        async with self.pool.connection() as conn:
            await webhooks_db.delivered(conn, delivered)
        WEBHOOKS.labels(result="delivered").inc(len(delivered))
        return True

    async def refresh_backlog(self) -> None:
        """Dead-letter events past the bound that nothing attempts (no URL set), then count the
        pending and dead events for the gauges: one cheap query, every BACKLOG_EVERY seconds."""
        self.backlog_counted = time.monotonic()
        async with self.pool.connection() as conn:
            dead_after = float((await settings_db.read_all(conn))["webhook_dead_after_seconds"])
            expired = await webhooks_db.expire(conn, dead_after)
            pending, dead = await webhooks_db.backlog(conn)
        if expired:
            metrics.WEBHOOK_EVENTS_DEAD.inc(expired)
            log.warning("%d webhook event(s) dead: undelivered %gs after they were queued", expired, dead_after)
        metrics.WEBHOOK_EVENTS_PENDING.set(pending)
        metrics.WEBHOOK_EVENTS_DEAD_LETTERS.set(dead)

    async def _post(self, url: str, retry: RetryPolicy, tls: ssl.SSLContext, event_id: int, payload: dict,
                    attempt: int) -> bool:
        """One attempt; True when the receiver took it (the caller records it), else the failure
        is recorded here."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(self.signing_key, body)}
        try:
            check_literal_host(urlsplit(url).hostname or "", self.allowed)
            async with self.session.post(url, data=body, headers=headers, allow_redirects=False, ssl=tls,
                                         timeout=aiohttp.ClientTimeout(total=10)) as resp:
                if resp.status < 300:
                    return True
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
        async with self.pool.connection() as conn:
            dead = await webhooks_db.failed(conn, event_id, backoff(attempt, retry.base, retry.cap), error,
                                            retry.dead_after)
        if dead:
            WEBHOOKS.labels(result="dead").inc()
            metrics.WEBHOOK_EVENTS_DEAD.inc()
            log.warning("webhook event %d dead after %d attempts (last: %s); it is kept for replay",
                        event_id, attempt, error)
        else:
            WEBHOOKS.labels(result="retry").inc()
        return False


@dataclass(frozen=True)
class RetryPolicy:
    """The retry settings, in seconds, as read for one dispatch round."""

    base: float
    cap: float
    dead_after: float

    @classmethod
    def from_settings(cls, settings: dict) -> "RetryPolicy":
        base = float(settings["callback_backoff_delay_ms"]) / 1000
        return cls(base, max(base, float(settings["max_callback_backoff_delay_ms"]) / 1000),
                   float(settings["webhook_dead_after_seconds"]))
