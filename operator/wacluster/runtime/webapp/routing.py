"""Route a message to the coreapp that owns its shard, from an in-memory copy of the shard map
kept fresh by LISTEN/NOTIFY and a periodic full reload. Keeps working with every master down."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import aiohttp
from prometheus_client import Counter, Gauge
from psycopg_pool import AsyncConnectionPool

from wacluster.api.control import HandedMessage, HandOff
from wacluster.api.interprocess import NotifyKind
from wacluster.db.listener import Listener
from wacluster.runtime.internal_auth import bearer

log = logging.getLogger("wacluster.webapp")

ROUTING_RETRIES = Counter("wacluster_webapp_routing_retries_total",
                          "Attempts to hand a message to a coreapp that had to be repeated.", ["reason"])
LEFT_TO_BACKLOG = Counter("wacluster_webapp_handoffs_left_to_backlog_total",
                          "Batches a full shard owner left in the database for its backlog scan to send.")
# With several workers (workers.py) a pod shows the live workers' highest value: the stalest map's age.
SHARD_MAP_EPOCH = Gauge("wacluster_webapp_shard_map_epoch", "Epoch of each shard in this webapp's shard map.",
                        ["shard"], multiprocess_mode="livemax")
SHARD_MAP_AGE = Gauge("wacluster_webapp_shard_map_age_seconds", "Seconds since this webapp last reloaded the shard map.",
                      multiprocess_mode="livemax")
RELOAD_EVERY = 2.0
UNAUTHORIZED_LOG_EVERY = 60.0


@dataclass(frozen=True)
class Owner:
    coreapp: str
    address: str
    epoch: int


class ShardMapCache:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self.owners: dict[int, Owner | None] = {}
        self.shard_count = 1
        self.loaded_at = 0.0
        self.changed = asyncio.Event()
        self._dirty = asyncio.Event()
        self.listener = Listener(pool, self._notified)

    def _notified(self, payload: dict) -> None:
        if payload.get("kind") in (NotifyKind.SHARD_MAP, NotifyKind.HANDOFF, NotifyKind.LISTENING, NotifyKind.SETTINGS):
            self._dirty.set()

    async def reload(self) -> None:
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT s.shard, CASE WHEN s.revoked THEN NULL ELSE s.coreapp END, n.address, s.epoch FROM shard_map s "
                "LEFT JOIN nodes n ON n.name = s.coreapp AND n.role = 'coreapp' "
                "WHERE true ORDER BY s.shard")).fetchall()
        owners = {}
        for shard, coreapp, address, epoch in rows:
            owners[shard] = Owner(coreapp, address, epoch) if coreapp and address else None
            SHARD_MAP_EPOCH.labels(shard=str(shard)).set(epoch)
        self.owners = owners
        self.shard_count = max(1, len(owners))
        self.loaded_at = time.monotonic()
        self.changed.set()
        self.changed = asyncio.Event()

    async def run(self) -> None:
        """Reload on every change notice (`self.listener`, supervised beside this) and at least
        every RELOAD_EVERY seconds."""
        while True:
            try:
                await self.reload()
            except Exception as exc:
                log.warning("cannot reload the shard map: %s", exc)
            self._dirty.clear()
            try:
                await asyncio.wait_for(self._dirty.wait(), timeout=RELOAD_EVERY)
            except asyncio.TimeoutError:
                pass
            SHARD_MAP_AGE.set(time.monotonic() - self.loaded_at)

    def invalidate(self) -> None:
        self._dirty.set()


class Router:
    """Hands stored messages to shard owners; retries through a failover until the deadline."""

    def __init__(self, cache: ShardMapCache, session: aiohttp.ClientSession, internal_token: str) -> None:
        self.cache = cache
        self.session = session  # shared with calls to the gateway: the token goes on hand-offs only
        self.headers = bearer(internal_token)  # a coreapp answers nobody else (runtime/internal_auth.py)
        self.refusal_logged_at = float("-inf")

    async def deliver(self, shard: int, ids: list[str], deadline: float) -> bool:
        """True once the shard's owner took the batch (202), or answered that it is full (503):
        then the stored rows wait for its backlog scan, which sends them in order as it has room
        (runtime/coreapp/outbox.py) — a burst is accepted at the pace of the database, sent at
        the gateway's. False when no owner answered before `deadline`. Only ids travel: the
        owner sends what the database holds for each."""
        payload = HandOff(shard=shard, messages=[HandedMessage(id=i) for i in ids]).model_dump()
        while True:
            owner = self.cache.owners.get(shard)
            reason = "no_owner"
            if owner is not None:
                try:
                    timeout = aiohttp.ClientTimeout(total=max(0.1, min(2.0, deadline - time.monotonic())))
                    async with self.session.post(f"http://{owner.address}/messages", json=payload,
                                                 headers=self.headers, timeout=timeout) as resp:
                        if resp.status in (202, 503):  # taken, or left to the owner's backlog
                            if resp.status == 503:
                                LEFT_TO_BACKLOG.inc()
                            return True
                        reason = {400: "refused", 401: "unauthorized"}.get(resp.status, "not_owner")
                        if reason == "refused":  # a bug on one side or the other: retrying cannot help
                            log.error("shard %d's owner refused a hand-off: %s", shard, await resp.text())
                            return False
                        if reason == "unauthorized":  # the roles disagree on the token: nor can it
                            self._unauthorized(owner)
                            return False
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    reason = "unreachable"
                self.cache.invalidate()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            ROUTING_RETRIES.labels(reason=reason).inc()
            changed = self.cache.changed
            try:
                await asyncio.wait_for(changed.wait(), timeout=min(remaining, 0.1))
            except asyncio.TimeoutError:
                pass

    def _unauthorized(self, owner: Owner) -> None:
        now = time.monotonic()
        if now - self.refusal_logged_at >= UNAUTHORIZED_LOG_EVERY:  # once a minute, not once a message
            self.refusal_logged_at = now
            log.error("%s (%s) refused this webapp's internal token (401): the webapp and the coreapps "
                      "were started with different tokens (Secret <cluster>-internal); restart them together",
                      owner.coreapp, owner.address)
