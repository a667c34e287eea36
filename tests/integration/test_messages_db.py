"""The message store against a real PostgreSQL: a batch goes in as one statement and comes
back whole (ids, recipients, shards, JSON bodies), in the shard's queue."""

from __future__ import annotations

import psycopg
import pytest

from wacluster.db import messages as messages_db
from wacluster.db import schema
from wacluster.db.messages import Message

pytestmark = pytest.mark.integration


async def test_a_batch_is_stored_with_its_json_bodies_and_queued_per_shard(pg_dsn):
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        await schema.migrate(conn)
        batch = [(Message(f"m{i}", f"+1555000{i}", i % 2, {"type": "text", "text": {"body": f"hello {i}"}}), 40 + i)
                 for i in range(5)]
        await messages_db.insert_many(conn, batch)
        shard0 = await messages_db.queued(conn, 0)
        # One statement: the batch shares its created_at, so only membership is defined, not order.
        assert sorted((m.id, m.recipient, m.body) for m in shard0) == [
            (f"m{i}", f"+1555000{i}", {"type": "text", "text": {"body": f"hello {i}"}}) for i in (0, 2, 4)]
        assert sorted(m.id for m in await messages_db.queued(conn, 1)) == ["m1", "m3"]
        row = await (await conn.execute(
            "SELECT route_hash, jsonb_typeof(body), body->'text'->>'body' FROM messages WHERE id = 'm3'")).fetchone()
        assert row == (43, "object", "hello 3")
        with pytest.raises(psycopg.errors.UniqueViolation):  # all or nothing: m4 exists, so m5 is not stored
            await messages_db.insert_many(conn, [(Message("m5", "+1", 0, {}), 1), (Message("m4", "+1", 0, {}), 1)])
        assert (await (await conn.execute("SELECT count(*) FROM messages WHERE id = 'm5'")).fetchone())[0] == 0
