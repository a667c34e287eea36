"""LISTEN on the cluster's channel with a dedicated connection; reconnects on failure."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Callable

import psycopg
from psycopg_pool import AsyncConnectionPool

from wacluster.api.interprocess import CHANNEL, NotifyKind

log = logging.getLogger("wacluster.db")


class Listener:
    def __init__(self, pool: AsyncConnectionPool, callback: Callable[[dict], None]) -> None:
        self.conninfo = pool.conninfo
        self.callback = callback
        self.conn: psycopg.AsyncConnection | None = None

    async def run(self) -> None:
        while True:
            try:
                self.conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
                await self.conn.execute(f"LISTEN {CHANNEL}")
                self.callback({"kind": NotifyKind.LISTENING})  # anything missed while away: reload now
                async for notify in self.conn.notifies():
                    try:
                        payload = json.loads(notify.payload)
                    except ValueError:
                        payload = {"kind": NotifyKind.UNKNOWN}
                    self.callback(payload)
            except (psycopg.Error, OSError) as exc:
                log.warning("LISTEN connection lost (%s); reconnecting", exc)
                await asyncio.sleep(0.5)
            finally:
                await self.close()

    async def close(self) -> None:
        if self.conn is not None and not self.conn.closed:
            await self.conn.close()
        self.conn = None
