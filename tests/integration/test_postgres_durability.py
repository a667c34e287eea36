"""The test environment's PostgreSQL keeps what it acknowledged, as production does: a row
committed before a restart is there after it. A server started fast (no fsync, asynchronous
commit, no full-page writes) is only for runs that never restart it, and refuses to restart."""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest

from wacluster_testenv.postgres import Postgres, PostgresError
from wacluster_testenv.state import state_root

pytestmark = pytest.mark.harness


def _private(durable: bool | None = None):
    directory = state_root() / f"durability-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    server = Postgres(directory) if durable is None else Postgres(directory, durable=durable)
    return server.up()


@pytest.fixture
def durable_server():
    server = _private()
    yield server
    server.down()


@pytest.fixture
def fast_server():
    server = _private(durable=False)
    yield server
    server.down()


def test_a_server_is_durable_unless_asked_otherwise(durable_server):
    with psycopg.connect(durable_server.admin_dsn) as conn:
        settings = {name: conn.execute(f"SHOW {name}").fetchone()[0]
                    for name in ("fsync", "synchronous_commit", "full_page_writes")}
    assert settings == {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


def test_a_row_committed_before_a_restart_is_there_after_it(durable_server):
    with psycopg.connect(durable_server.admin_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE acknowledged (id int PRIMARY KEY)")
        conn.execute("INSERT INTO acknowledged VALUES (1)")
    durable_server.restart()
    with psycopg.connect(durable_server.admin_dsn) as conn:
        assert conn.execute("SELECT id FROM acknowledged").fetchall() == [(1,)]


def test_a_fast_server_refuses_to_restart(fast_server):
    with pytest.raises(PostgresError, match="durable"):
        fast_server.restart()
    with psycopg.connect(fast_server.admin_dsn) as conn:  # and it was left running
        assert conn.execute("SELECT 1").fetchone() == (1,)
