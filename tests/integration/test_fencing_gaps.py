"""Three gaps docs/promotion.md listed in the fencing argument, each closed, on a real PostgreSQL:
a row naming nobody with a live lease is not promoted over; a resize cannot slip between a
renewal and its own update; a gateway handshake cannot outlast the lease it was started under."""

from __future__ import annotations

import asyncio

import aiohttp
import psycopg
import pytest
from aiohttp import web

from wacluster.db import schema, shard_map
from wacluster.db.connection import open_pool
from wacluster.domain.coreapp_state import CoreappState as S
from wacluster.runtime.coreapp.role import Coreapp
from wacluster.runtime.node import NodeIdentity
from wacluster_testenv.eventually import eventually_async

pytestmark = pytest.mark.integration

TERM, HOLDER = 1, "master1"


@pytest.fixture
async def conn(pg_dsn):
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        await schema.migrate(conn)
        assert await shard_map.claim_term(conn, TERM, HOLDER)
        yield conn


async def test_a_shard_that_names_nobody_is_not_promoted_while_a_lease_on_it_lasts(conn):
    # What a resize that raced a renewal used to leave: no owner named, a live lease.
    await conn.execute("INSERT INTO shard_map (shard, coreapp, epoch, lease_until) "
                       "VALUES (0, NULL, 3, now() + interval '30 seconds')")
    assert await shard_map.promote(conn, 0, 3, "wacore2", 1.0, TERM, HOLDER, "test") is None
    await conn.execute("UPDATE shard_map SET lease_until = now() WHERE shard = 0")
    assert await shard_map.promote(conn, 0, 3, "wacore2", 1.0, TERM, HOLDER, "test") == 4


async def test_a_resize_waits_for_a_renewal_in_flight_and_then_leaves_the_live_lease_alone(conn, pg_dsn):
    await conn.execute("INSERT INTO shard_map (shard, coreapp, epoch, lease_until) "
                       "VALUES (0, 'wacore1', 1, now() - interval '1 second')")
    async with await psycopg.AsyncConnection.connect(pg_dsn) as renewer, \
            await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as resizer:
        # The owner's renewal has run, not yet committed: its lease looks expired to others.
        assert await shard_map.renew_lease(renewer, 0, 1, "wacore1", 30.0)
        resize_pid = resizer.info.backend_pid
        resizing = asyncio.create_task(shard_map.resize(resizer, 2, TERM, HOLDER))
        await eventually_async(lambda: _waits_for_a_lock(conn, resize_pid), 30,
                               what="the resize waiting on the renewal's row lock")
        await renewer.commit()
        assert await resizing is False
    row = await (await conn.execute("SELECT coreapp, epoch, lease_until > now() FROM shard_map WHERE shard = 0")).fetchone()
    assert row == ("wacore1", 1, True)
    assert await (await conn.execute("SELECT count(*) FROM shard_map")).fetchone() == (1,)


async def _waits_for_a_lock(conn, pid: int) -> bool:
    row = await (await conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,))).fetchone()
    return row is not None and row[0] == "Lock"


class SilentGateway:
    """Accepts the websocket and never says `connected`: a handshake that hangs."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0

    async def connect(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.opened += 1
        try:
            async for _ in ws:
                pass
        finally:
            self.closed += 1
        return ws


async def test_a_takeover_whose_handshake_outlasts_the_lease_gives_up_and_closes_the_connection(conn, pg_dsn):
    gateway = SilentGateway()
    app = web.Application()
    app.router.add_get("/connect", gateway.connect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    pool = await open_pool(pg_dsn)
    coreapp = Coreapp(NodeIdentity("wacore1", "n1", "test", "127.0.0.1:0"), pool, f"http://127.0.0.1:{port}")
    # A lease of 0.6 s (heartbeat 0.3 s, unhealthy 0.9 s), far shorter than the link's 5 s handshake wait.
    coreapp.settings = {**coreapp.settings, "heartbeat_interval": 0.3, "unhealthy_interval": 0.9}
    coreapp.http = aiohttp.ClientSession()
    coreapp.lifecycle.move(S.STANDBY, "test")
    await conn.execute("INSERT INTO shard_map (shard, coreapp, epoch, lease_until) "
                       "VALUES (0, 'wacore1', 1, now() + interval '0.6 seconds')")
    sentences: list[str] = []
    coreapp.say = lambda sentence, always=False: sentences.append(sentence)
    try:
        await coreapp.ownership.take(0, 1, "+15550001111")
        assert coreapp.lifecycle.state is S.STANDBY and coreapp.session is None
        assert gateway.opened == 1
        assert any("the lease ran out first" in s for s in sentences), sentences
        await eventually_async(lambda: gateway.closed == 1, 30, what="the abandoned connection closed")
    finally:
        await coreapp.http.close()
        await pool.close()
        await runner.cleanup()


async def test_a_coreapp_takes_the_shard_it_was_promoted_to_last_not_the_highest_epoch(conn):
    # wacore1 lost shard 0 (epoch 7, lease expired, not yet taken over) and was then promoted to
    # shard 1, whose epoch is lower: epochs count per shard.
    await conn.execute("INSERT INTO shard_map (shard, coreapp, epoch, since, lease_until) VALUES "
                       "(0, 'wacore1', 7, now() - interval '10 seconds', now() - interval '5 seconds'), "
                       "(1, 'wacore1', 2, now(), now() + interval '10 seconds')")
    assert await shard_map.assignment(conn, "wacore1") == (1, 2, False)
    assert await shard_map.assignment(conn, "wacore9") is None
