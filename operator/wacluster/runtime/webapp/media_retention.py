"""Media retention: uploads older than `retention_media_days` (spec.retention.mediaDays; 0 keeps
forever) lose their file and their row, every `retention_interval` seconds.

Done by a webapp, not the master: webapps write the media directory and know where it is
(`--media-dir`), so pruning stays beside the code that names the files. One webapp at a time,
under a PostgreSQL advisory lock held on its own connection for the run (released by the
database if that webapp dies). Files go before rows: a crash in between leaves rows without
files, which a download already answers with 404 and the next run deletes; the reverse would
leave files no row names, never pruned."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from psycopg_pool import AsyncConnectionPool

from wacluster.db import media as media_db
from wacluster.db import settings as settings_db
from wacluster.runtime import metrics
from wacluster.runtime.webapp.media import MEDIA_ID

log = logging.getLogger("wacluster.webapp")

MEDIA_RETENTION_LOCK = 0x7761636D  # "wacm": one pruning webapp at a time
BATCH = 1000
PAUSE = 0.2
CHECK_EVERY = 5.0


class MediaRetention:
    def __init__(self, pool: AsyncConnectionPool, directory: Path, batch: int = BATCH, pause: float = PAUSE) -> None:
        self.pool, self.directory, self.batch, self.pause = pool, directory, batch, pause
        self.last_run: float | None = None

    async def run(self) -> None:
        """Forever: a pruning run whenever one is due (another webapp may do it instead)."""
        interval = float(settings_db.DEFAULTS["retention_interval"])
        while True:
            await asyncio.sleep(min(CHECK_EVERY, interval))
            # A database outage must not end the task (its restarts are limited): log, go on.
            try:
                async with self.pool.connection() as conn:
                    interval = float((await settings_db.read_all(conn))["retention_interval"])
                if self.last_run is None or time.monotonic() - self.last_run >= interval:
                    self.last_run = time.monotonic()  # a failed run is retried at the next interval
                    await self.prune()
            except Exception as exc:
                log.warning("media retention run failed: %s", exc)

    async def prune(self) -> int | None:
        """One run: media pruned, or None when another webapp holds the lock (it prunes)."""
        async with self.pool.connection() as conn:
            days = float((await settings_db.read_all(conn))["retention_media_days"])
            if days <= 0:
                return 0
            locked = (await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (MEDIA_RETENTION_LOCK,))).fetchone())[0]
            if not locked:
                return None
            try:
                total = 0
                while True:
                    ids = await media_db.expired(conn, days, self.batch)
                    if not ids:
                        break
                    await asyncio.to_thread(self._unlink, ids)  # the volume may be NFS: off the event loop
                    count = await media_db.remove(conn, ids)
                    total += count
                    metrics.ROWS_PRUNED.labels(table="media").inc(count)
                    if len(ids) < self.batch:
                        break
                    await asyncio.sleep(self.pause)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (MEDIA_RETENTION_LOCK,))
        if total:
            log.info("retention pruned %d media files and rows older than %g days", total, days)
        return total

    def _unlink(self, media_ids: list[str]) -> None:
        for media_id in media_ids:
            if MEDIA_ID.match(media_id):  # ids are ours; never a path that leaves the directory
                (self.directory / media_id).unlink(missing_ok=True)
