"""Between an upgrade's dbupgrade and the roll of the roles, the old roles run against the new
schema. After an expand migration they must go on failing over; after a contract migration that
no longer serves them they must refuse to act, saying why (db/schema.py)."""

from __future__ import annotations

import asyncio
import signal

import psycopg
import pytest

from wacluster.db import schema
from runtime_cluster import connected, start
from wacluster_testenv.eventually import eventually

pytestmark = pytest.mark.integration


def next_release_dbupgrade(dsn: str, roles_from: int, sql: str) -> None:
    """What the next release's `wacluster dbupgrade` does: this release's migrations and one more."""
    following = schema.Migration(schema.SCHEMA_VERSION + 1, roles_from, sql)

    async def run():
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            await schema.migrate(conn, [*schema.MIGRATIONS, following])
    asyncio.run(run())


def test_a_shard_fails_over_between_an_expand_dbupgrade_and_the_roll(cluster):
    start(cluster, masters=2, coreapps=2)
    owner = eventually(lambda: (o := connected(cluster)) and o[0][0], 60, what="shard 0 connected")

    next_release_dbupgrade(cluster.dsn, schema.SCHEMA_VERSION,
                           "ALTER TABLE messages ADD COLUMN next_release_note text")
    assert cluster.query("SELECT version, roles_from FROM schema_version") == [
        (schema.SCHEMA_VERSION + 1, schema.SCHEMA_VERSION)]

    cluster.roles[owner].signal(signal.SIGKILL)
    new_owner = eventually(lambda: (o := connected(cluster)) and o[0][0] != owner and o[0][0], 60,
                           what=f"shard 0 connected by another coreapp than {owner}",
                           details=lambda: str(cluster.query("SELECT name, error FROM nodes")))
    assert cluster.query("SELECT from_coreapp, to_coreapp FROM failovers ORDER BY id DESC LIMIT 1") == [
        (owner, new_owner)]
    # And a coreapp of this release still starts against the newer schema.
    cluster.start_coreapp("wacore3")
    eventually(lambda: cluster.query("SELECT count(*) FROM nodes WHERE name = 'wacore3' AND error IS NULL")
               == [(1,)], 60, what="wacore3 registered without error")


def test_roles_a_contract_migration_no_longer_serves_refuse_to_act_and_say_why(cluster):
    start(cluster, masters=1, coreapps=1)
    eventually(lambda: connected(cluster), 60, what="shard 0 connected")

    next_release_dbupgrade(cluster.dsn, schema.SCHEMA_VERSION + 1, "SELECT 1")

    errors = eventually(lambda: (rows := cluster.query("SELECT error FROM nodes WHERE name = 'master1'"))
                        and rows[0][0], 30, what="master1 reporting the schema it cannot serve")
    assert "no longer serves roles of schema" in errors
