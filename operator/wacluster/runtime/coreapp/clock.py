"""Measures the database's clock against the coreapp's own (domain/clock_rate.py), so the shard
lease's deadline covers a database clock that runs fast, and says so when it does."""

from __future__ import annotations

import asyncio
import logging
import time

from psycopg_pool import AsyncConnectionPool

from wacluster.domain.clock_rate import ClockRate
from wacluster.domain.fencing import MARGIN
from wacluster.runtime import metrics

log = logging.getLogger("wacluster.coreapp")

SAMPLE_EVERY = 5.0
WARN_ABOVE = 1 + MARGIN / 2   # half the margin used up: someone should look at the clocks
WARN_EVERY = 60.0


async def measure(pool: AsyncConnectionPool, rate: ClockRate) -> None:
    """Sample the database's clock every SAMPLE_EVERY seconds; runs until cancelled (a failed
    sample is skipped: the bound only needs two good ones)."""
    warned_at = float("-inf")
    while True:
        try:
            async with pool.connection() as conn:
                before = time.monotonic()
                row = await (await conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8")).fetchone()
                after = time.monotonic()
            rate.sample(before, after, row[0])
        except Exception as exc:  # the database may be away; the lease itself guards safety
            log.debug("could not sample the database clock: %s", exc)
        bound = rate.bound()
        metrics.DATABASE_CLOCK_RATE.set(bound)
        if bound > WARN_ABOVE and time.monotonic() - warned_at >= WARN_EVERY:
            warned_at = time.monotonic()
            log.warning("the database's clock runs up to %.2f%% faster than this coreapp's; shard leases "
                        "are shortened to match, but check the machines' time synchronisation",
                        (bound - 1) * 100)
        await asyncio.sleep(SAMPLE_EVERY)
