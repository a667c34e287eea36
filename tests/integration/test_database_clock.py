"""The coreapp's sampling of the database's clock (runtime/coreapp/clock.py) against a real
PostgreSQL on this machine, where both clocks are the same one: the bound is 1 to within the
round trips, and it is exported."""

from __future__ import annotations

import asyncio

import pytest

from wacluster.db.connection import open_pool
from wacluster.domain.clock_rate import ClockRate
from wacluster.runtime import metrics
from wacluster.runtime.coreapp import clock
from wacluster_testenv.eventually import eventually_async

pytestmark = pytest.mark.integration


async def test_the_same_machines_clocks_run_at_the_same_rate(pg_dsn, monkeypatch):
    monkeypatch.setattr(clock, "SAMPLE_EVERY", 0.05)
    pool = await open_pool(pg_dsn)
    rate = ClockRate(min_span=1.0)
    task = asyncio.create_task(clock.measure(pool, rate))
    try:
        await eventually_async(lambda: len(rate._samples) >= 2 and
                               rate._samples[-1].before - rate._samples[0].after >= 1.5, 30,
                               what="1.5 s of samples")
        assert 1.0 <= rate.bound() < 1.01
        assert metrics.DATABASE_CLOCK_RATE._value.get() == pytest.approx(rate.bound(), abs=0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pool.close()
