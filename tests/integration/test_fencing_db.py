"""The coreapp's own lease deadline against the database's `lease_until`, on a real PostgreSQL:
the coreapp's renewal loop (runtime/coreapp/ownership.py) renews with the product's SQL (db/shard_map.py),
and at every moment its deadline lies before the end of the lease the database holds, so a master
(which promotes only after `lease_until`) can never start a successor while the coreapp serves.

Comparing the two clocks: a query reading `lease_until - clock_timestamp()` is bracketed by
monotonic readings; the database's clock was read after `t0`, so the database lease ends no
earlier than `t0 + remaining` on the monotonic clock. The coreapp's deadline, read before `t0`,
must come before that."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from wacluster.db import schema, shard_map
from wacluster.db.connection import open_pool
from wacluster.domain.coreapp_state import CoreappState as S
from wacluster.domain.fencing import MARGIN, ShardLease
from wacluster.domain.ha import lease_ttl
from wacluster.runtime.coreapp.outbox import Outbox
from wacluster.runtime.coreapp.ownership import Session
from wacluster.runtime.coreapp.role import Coreapp
from wacluster.runtime.node import NodeIdentity
from wacluster_testenv.eventually import eventually_async

pytestmark = pytest.mark.integration

HEARTBEAT, UNHEALTHY = 0.3, 0.9
TTL = lease_ttl(HEARTBEAT, UNHEALTHY)  # 0.6 s: renewed every 0.2 s


@pytest.fixture
async def serving_coreapp(pg_dsn):
    """A Coreapp that has just taken shard 0 (epoch 1), as `Ownership.take` does, with its lease
    renewal loop not yet running."""
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        await schema.migrate(conn)
        await conn.execute("INSERT INTO shard_map (shard, coreapp, epoch) VALUES (0, 'wacore1', 1)")
    pool = await open_pool(pg_dsn)
    coreapp = Coreapp(NodeIdentity("wacore1", "n1", "test", "127.0.0.1:0"), pool, "http://unused")
    coreapp.settings = {**coreapp.settings, "heartbeat_interval": HEARTBEAT, "unhealthy_interval": UNHEALTHY}
    lease = ShardLease(0, 1, TTL)
    sent = time.monotonic()
    async with pool.connection() as conn:
        assert await shard_map.renew_lease(conn, 0, 1, "wacore1", TTL)
    lease.confirmed(sent)
    for state in (S.STANDBY, S.TAKING_OVER, S.SERVING):
        coreapp.lifecycle.move(state, "test")
    coreapp.session = Session(0, 1, lease, link=None, outbox=Outbox(1))
    coreapp.ownership.session_started.set()
    try:
        yield coreapp
    finally:
        await pool.close()


async def database_lease_end(conn) -> float:
    """The earliest monotonic instant at which the database's lease on shard 0 can have ended."""
    t0 = time.monotonic()
    row = await (await conn.execute(
        "SELECT extract(epoch FROM lease_until - clock_timestamp())::float FROM shard_map WHERE shard = 0")).fetchone()
    return t0 + row[0]


def run(coroutine) -> asyncio.Task:
    return asyncio.create_task(coroutine)


async def stop(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_through_renewals_the_coreapps_deadline_stays_before_the_databases_lease_end(serving_coreapp, pg_dsn):
    lease = serving_coreapp.session.lease
    renewing = run(serving_coreapp.ownership.renew_loop())
    compared: list[tuple[float, float]] = []
    try:
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
            async def several_renewals_compared() -> bool:
                deadline = lease.deadline
                compared.append((deadline, await database_lease_end(conn)))
                return len({d for d, _ in compared}) >= 6

            await eventually_async(several_renewals_compared, 60, interval=0.02, what="six renewals compared")
    finally:
        await stop(renewing)
    late = [(deadline, end) for deadline, end in compared if deadline >= end]
    assert late == [], "the coreapp would still serve after the database's lease ended"


async def test_a_renewal_the_database_holds_up_counts_from_its_send_time(serving_coreapp, pg_dsn):
    """A renewal blocked behind a row lock is answered late; the database evaluated now() when the
    statement arrived, so the coreapp must count from before it sent, not from the reply."""
    lease = serving_coreapp.session.lease
    first_deadline = lease.deadline
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as observer:
        async with await psycopg.AsyncConnection.connect(pg_dsn) as locker:  # a transaction holds the row
            await locker.execute("SELECT 1 FROM shard_map WHERE shard = 0 FOR UPDATE")
            renewing = run(serving_coreapp.ownership.renew_loop())
            try:
                await eventually_async(lambda: renewal_waiting_for_the_lock(observer), 30,
                                       what="the renewal waiting for the row lock")
                # Deliberately let half the ttl pass: the reply to this renewal comes that late.
                await asyncio.sleep(TTL / 2)
                released_at = time.monotonic()
                await locker.commit()
                await eventually_async(lambda: lease.deadline != first_deadline, 30, what="the late renewal confirmed")
                deadline = lease.deadline
                database_end = await database_lease_end(observer)
            finally:
                await stop(renewing)
    assert deadline - TTL * (1 - MARGIN) < released_at, "the lease was counted from the late reply"
    assert deadline < database_end


async def renewal_waiting_for_the_lock(conn) -> bool:
    row = await (await conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE 'UPDATE shard_map SET lease_until%'")).fetchone()
    return row[0] == 1
