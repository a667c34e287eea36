"""Every master, primary or not, pings every coreapp each `heartbeat_interval` and records the
answers in `heartbeats`: the heartbeat rule of domain/ha.py reads them. Also the direct check of
a standby right before its promotion."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

import aiohttp
from psycopg_pool import AsyncConnectionPool

from wacluster.api.interprocess import Role
from wacluster.db import nodes as nodes_db
from wacluster.runtime import metrics
from wacluster.runtime.internal_auth import bearer

log = logging.getLogger("wacluster.master")


class Heartbeats:
    def __init__(self, name: str, pool: AsyncConnectionPool, settings: Callable[[], dict[str, Any]],
                 internal_token: str) -> None:
        self.name = name
        self.headers = bearer(internal_token)  # a coreapp answers nobody else (runtime/internal_auth.py)
        self.pool = pool
        self.settings = settings
        self.session: aiohttp.ClientSession | None = None
        self.last_round = 0.0
        # Coreapps that failed a direct check just before a promotion; cleared when they answer.
        self.unreachable: set[str] = set()
        self.refused_by: set[str] = set()  # coreapps that answered 401, logged once each

    async def open(self) -> None:
        self.session = aiohttp.ClientSession()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def interval(self) -> float:
        return float(self.settings()["heartbeat_interval"])

    def soon(self) -> None:
        """Ping at the next cycle instead of a beat from now (a planned handoff: the successor is
        chosen from heartbeats taken now)."""
        self.last_round = 0.0

    async def round_if_due(self, now: float) -> None:
        if now - self.last_round >= self.interval():
            self.last_round = now
            await self.round()

    async def round(self) -> None:
        """Ping every registered coreapp at once and record who answered."""
        async with self.pool.connection() as conn:
            coreapps = await nodes_db.list_nodes(conn, Role.COREAPP)
        timeout = aiohttp.ClientTimeout(total=max(0.2, min(self.interval(), 2.0)))
        results = dict(await asyncio.gather(*(self.ping(n.name, n.address, timeout) for n in coreapps)))
        async with self.pool.connection() as conn:
            await nodes_db.record_heartbeats(conn, self.name, results)

    async def ping(self, name: str, address: str, timeout: aiohttp.ClientTimeout) -> tuple[str, float | None]:
        """(name, round trip in ms), or (name, None) when it did not answer in time."""
        started = time.monotonic()
        try:
            async with self.session.get(f"http://{address}/heartbeat", headers=self.headers, timeout=timeout) as resp:
                if resp.status == 401 and name not in self.refused_by:  # once per coreapp, until it answers
                    self.refused_by.add(name)
                    log.error("%s refused this master's internal token (401): the master and the coreapps were "
                              "started with different tokens (Secret <cluster>-internal); restart them together", name)
                if resp.status != 200:
                    raise aiohttp.ClientError(f"status {resp.status}")
                await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            metrics.COREAPP_HEALTHY.labels(coreapp=name).set(0)
            return name, None
        rtt = time.monotonic() - started
        metrics.HEARTBEAT_RTT.observe(rtt)
        metrics.COREAPP_HEALTHY.labels(coreapp=name).set(1)
        self.unreachable.discard(name)
        self.refused_by.discard(name)
        return name, rtt * 1000
