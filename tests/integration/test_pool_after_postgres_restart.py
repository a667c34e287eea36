"""Every role's connection pool (db/connection.py) survives a PostgreSQL restart: the first use
after it gets a working connection, not one the restart killed."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from wacluster.db.connection import open_pool
from wacluster_testenv.postgres import Postgres
from wacluster_testenv.state import state_root

pytestmark = pytest.mark.integration


@pytest.fixture
def restartable_postgres():
    """A server of this test's own: restarting the session's server would break its other tests."""
    server = Postgres(state_root() / f"pool-restart-{os.getpid()}-{uuid.uuid4().hex[:6]}").up()
    yield server
    server.down()


async def test_the_first_query_after_a_postgres_restart_succeeds(restartable_postgres):
    pool = await open_pool(restartable_postgres.admin_dsn, min_size=1, max_size=2)
    try:
        async with pool.connection() as conn:
            assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
        await asyncio.to_thread(restartable_postgres.restart)
        async with pool.connection() as conn:
            assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
    finally:
        await pool.close()
