"""Retention: the primary master prunes settled rows older than spec.retention (the settings
`retention_*_days`; 0 keeps forever) every `retention_interval` seconds.

A supervised task beside the decision loop, so pruning never delays a promotion. Only the primary
prunes (a secondary would only repeat its work), and never on a schema it does not serve. Rows
go in batches (db/retention.py) with a pause between batches, so a large backlog never holds long
locks or starves message delivery of the database. Each run logs the rows it pruned per table and
counts them in `wacluster_rows_pruned_total{table}`. Media is pruned by a webapp, which owns the
media directory (runtime/webapp/media_retention.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from psycopg_pool import AsyncConnectionPool

from wacluster.db import retention as retention_db
from wacluster.runtime import metrics

log = logging.getLogger("wacluster.master")

BATCH = 1000          # rows per DELETE: milliseconds of locks, whatever the backlog
PAUSE = 0.2           # seconds between batches: the delivery path gets the database in between
CHECK_EVERY = 5.0     # seconds between checks whether a run is due (no query)


class Retention:
    def __init__(self, name: str, pool: AsyncConnectionPool, settings: Callable[[], dict[str, Any]],
                 may_act: Callable[[], bool], batch: int = BATCH, pause: float = PAUSE) -> None:
        """`may_act()`: this master is the primary and serves the schema; read before every batch."""
        self.name, self.pool, self.settings, self.may_act = name, pool, settings, may_act
        self.batch, self.pause = batch, pause
        self.last_run: float | None = None

    async def run(self) -> None:
        """Forever: a pruning run whenever one is due and this master may act."""
        while True:
            interval = float(self.settings()["retention_interval"])
            await asyncio.sleep(min(CHECK_EVERY, interval))
            due = self.last_run is None or time.monotonic() - self.last_run >= interval
            if due and self.may_act():
                try:
                    await self.prune()
                except Exception as exc:  # e.g. the database is down: the next run goes on from here
                    log.warning("%s: retention run failed: %s", self.name, exc)
                self.last_run = time.monotonic()

    async def prune(self) -> dict[str, int]:
        """One run over every table: rows pruned by table. Stops early when this master may no
        longer act (it lost the Lease); the next primary's run goes on from there."""
        started = time.monotonic()
        settings = self.settings()
        pruned: dict[str, int] = {}
        for prunable in retention_db.PRUNABLE:
            days = 1.0 if prunable.setting is None else float(settings[prunable.setting])
            if days <= 0:
                continue
            pruned[prunable.table] = pruned.get(prunable.table, 0) + await self._drain(prunable, days)
        total = sum(pruned.values())
        if total:
            log.info("%s: retention pruned %s in %.1fs", self.name,
                     ", ".join(f"{count} {table}" for table, count in pruned.items()), time.monotonic() - started)
        return pruned

    async def _drain(self, prunable: retention_db.Prunable, days: float) -> int:
        total = 0
        while self.may_act():
            async with self.pool.connection() as conn:
                count = await retention_db.prune_batch(conn, prunable, days, self.batch)
            total += count
            metrics.ROWS_PRUNED.labels(table=prunable.table).inc(count)
            if count < self.batch:
                break
            await asyncio.sleep(self.pause)
        return total
