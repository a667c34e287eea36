"""A coreapp whose supervised task fails for good brings itself down so its shard fails over: a real
Coreapp in this process, serving shard 0 through an in-process sandbox gateway against a real
PostgreSQL, whose watchdog fails. It fences itself (the gateway connection closes), releases its
shard (revoked, lease ended: the master may promote at once), deregisters, and `run` raises
RoleFailed, which `wacluster coreapp` turns into a non-zero exit."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from aiohttp.test_utils import TestServer

from wacluster.db import schema
from wacluster.db.connection import open_pool
from wacluster.domain.coreapp_state import CoreappState as S
from wacluster.runtime.coreapp.role import Coreapp
from wacluster.runtime.supervision import RoleFailed
from wacluster.runtime.node import NodeIdentity
from wacluster.runtime.sandbox import Gateway
from wacluster_testenv.eventually import eventually_async

pytestmark = pytest.mark.integration


@pytest.fixture
async def database(pg_dsn):
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        await schema.migrate(conn)
        await conn.execute("INSERT INTO account (id, phone) VALUES (1, '+15550001111')")
        await conn.execute("INSERT INTO settings (key, value) VALUES ('heartbeat_interval', '1'), "
                           "('unhealthy_interval', '3')")
        # As a promotion leaves it: wacore1 owns shard 0 at epoch 1 (its lease starts at its renewal).
        await conn.execute("INSERT INTO shard_map (shard, coreapp, epoch) VALUES (0, 'wacore1', 1)")
        yield conn


async def test_a_coreapp_whose_watchdog_fails_releases_its_shard_and_fails(database, pg_dsn):
    gateway = Gateway()
    async with TestServer(gateway.app()) as server:
        pool = await open_pool(pg_dsn)
        coreapp = Coreapp(NodeIdentity("wacore1", "n1", "test", "127.0.0.1:0"), pool, str(server.make_url("/")))

        async def watchdog_that_fails_once_serving():
            await eventually_async(lambda: coreapp.lifecycle.state is S.SERVING, 30, interval=0.01,
                                   what="wacore1 serving shard 0")
            raise RuntimeError("the watchdog broke")

        coreapp.ownership.watchdog = watchdog_that_fails_once_serving
        try:
            with pytest.raises(RoleFailed, match="task watchdog stopped: it failed: RuntimeError"):
                await coreapp.run(asyncio.Event())
        finally:
            await pool.close()
    assert coreapp.lifecycle.state is S.STOPPED
    assert [(a.value, b.value) for a, b, _ in coreapp.lifecycle.history][-2:] == [("serving", "standby"),
                                                                                   ("standby", "stopped")]
    assert gateway.state.live == {}, "the gateway connection is still open"
    row = await (await database.execute(
        "SELECT revoked, lease_until <= now(), reason FROM shard_map WHERE shard = 0")).fetchone()
    assert row[0] and row[1] and "the watchdog broke" in row[2]
    assert await (await database.execute("SELECT count(*) FROM nodes WHERE name = 'wacore1'")).fetchone() == (0,)
