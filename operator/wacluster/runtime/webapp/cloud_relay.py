"""Relays the stored Cloud API notifications (db/cloud_notifications.py) to the business: each
becomes its on-premises webhook event (domain/cloud_inbound.py), queued for the outgoing-webhook
path (db/webhooks.py: signing, retries, dead letters), and a status settles a send of ours whose
outcome is in doubt. Runs supervised in every webapp; rows are locked while relayed, so replicas
share the work and a row left by a webapp that died is relayed by another.

A worker rather than doing this in the request that stored the rows: Meta's request is answered
as soon as the rows are durable (one INSERT), and a row that cannot be relayed (a translation
bug, an unknown shape) waits in the table with its error instead of making Meta retry and, after
days, disable the webhook. The webapp that stored a row wakes its own relay at once; the others
poll every POLL_EVERY seconds.

A status the application settings turn off (domain/status_webhooks.py: `sent` is opt-in) still
settles its send; only its webhook event is not queued. Relaying one batch is one transaction:
the webhook event, the message row's new state and the row's `relayed_at` commit together, so each
notification has its effect exactly once. The relay never waits for a message row another
transaction holds (a new owner reclaiming its backlog): that status is tried again shortly, so
the two can never deadlock."""

from __future__ import annotations

import asyncio
import logging
import time

import psycopg
from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from wacluster.db import cloud_notifications as cloud_db
from wacluster.db import messages as messages_db
from wacluster.db import settings as settings_db
from wacluster.db import webhooks as webhooks_db
from wacluster.domain.cloud_inbound import STATUS, onprem_webhook, send_outcome, wamids_to_resolve
from wacluster.domain.status_webhooks import wanted_payload
from wacluster.runtime import metrics

log = logging.getLogger("wacluster.webapp")
BATCH = 100
POLL_EVERY = 1.0
PRUNE_EVERY = 3600.0
PRUNE_BATCH = 1000
RETRY_UNTRANSLATABLE = 300.0  # seconds; only a new release can translate it, so no hurry
RETRY_BUSY = 0.5  # seconds; a status whose message row another transaction holds (never waited for)
RELAYED = Counter("wacluster_cloud_notifications_relayed_total",
                  "Cloud API notifications relayed as on-premises webhooks, by kind.", ["kind"])
IN_DOUBT_RESOLVED = Counter("wacluster_cloud_in_doubt_resolved_total",
                            "Sends in doubt settled by a Cloud status webhook, by outcome (delivered, failed).",
                            ["outcome"])


class CloudRelay:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self.wake = asyncio.Event()
        self.pruned_at = 0.0

    def stored(self) -> None:
        """New rows were stored here: relay them now."""
        self.wake.set()

    async def run(self) -> None:
        while True:
            try:
                worked = await self.relay_once()
                if time.monotonic() - self.pruned_at >= PRUNE_EVERY:
                    await self.prune()
            except Exception as exc:  # the database is away: try again on the next round
                log.warning("relaying Cloud notifications failed: %s", exc)
                worked = False
            if not worked:
                try:
                    await asyncio.wait_for(self.wake.wait(), POLL_EVERY)
                except TimeoutError:
                    pass
            self.wake.clear()

    async def relay_once(self) -> bool:
        """Relay one batch of due rows; False when there was none."""
        async with self.pool.connection() as conn:
            async with conn.transaction():
                rows = await cloud_db.lock_due(conn, BATCH)
                if not rows:
                    return False
                settings = await settings_db.read_all(conn)
                wamids = [w for row in rows for w in wamids_to_resolve(row.notification)]
                our_ids = await messages_db.ids_by_wamid(conn, wamids)
                events, done = [], []
                for row in rows:
                    try:
                        webhook = onprem_webhook(row.notification, our_ids)
                    except Exception as exc:
                        log.warning("Cloud notification %d (%s) does not translate (%r); trying again in %gs",
                                    row.id, row.notification.kind, exc, RETRY_UNTRANSLATABLE)
                        await cloud_db.postpone(conn, row.id, RETRY_UNTRANSLATABLE, repr(exc))
                        continue
                    try:
                        async with conn.transaction():  # a savepoint: a busy row undoes only its own part
                            await self._settle_send(conn, row.notification, webhook)
                    except psycopg.errors.LockNotAvailable:
                        await cloud_db.postpone(conn, row.id, RETRY_BUSY, "its message row was busy")
                        continue
                    # The on-premises status settings apply as in the coreapp (`sent` is opt-in).
                    wanted = wanted_payload(webhook, settings) if settings.get("webhook_url") else None
                    if wanted:
                        events.append(wanted)
                    done.append(row.id)
                    RELAYED.labels(kind=row.notification.kind).inc()
                await webhooks_db.enqueue(conn, events)
                await cloud_db.relayed(conn, done)
        return True

    async def _settle_send(self, conn, notification, webhook: dict) -> None:
        outcome = send_outcome(webhook) if notification.kind == STATUS else None
        if outcome is None:
            return
        message_id, result = outcome
        if await messages_db.resolve_in_doubt(conn, message_id, result, notification.value["status"]["id"]):
            IN_DOUBT_RESOLVED.labels(outcome=result).inc()
            log.info("message %s was in doubt; a Cloud status webhook settled it %s", message_id, result)

    async def prune(self, batches: int = 100) -> None:
        """Delete rows relayed long enough ago that Meta no longer retries them, in batches."""
        self.pruned_at = time.monotonic()
        for _ in range(batches):
            async with self.pool.connection() as conn:
                pruned = await cloud_db.prune(conn, limit=PRUNE_BATCH)
            metrics.ROWS_PRUNED.labels(table="cloud_notifications").inc(pruned)
            if pruned < PRUNE_BATCH:
                return
