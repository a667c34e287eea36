"""Idempotency keys in the message store, against a real PostgreSQL (db/messages.insert_many):
a key is stored once among the rows not withdrawn, in the same statement as the batch, also when
two writers race on it; a withdrawn row gives its key back."""

from __future__ import annotations

import asyncio
import hashlib

import psycopg
import pytest

from wacluster.db import messages as messages_db
from wacluster.db import schema
from wacluster.db.messages import Idempotency, KeyHolder, Message

pytestmark = pytest.mark.integration

FP_A = hashlib.sha256(b"a").digest()
FP_B = hashlib.sha256(b"b").digest()


def keyed(message_id: str, key: str | None, fp: bytes = FP_A) -> tuple[Message, int]:
    idem = Idempotency(key, fp) if key is not None else None
    return Message(message_id, "+15550001", 0, {"type": "text", "text": {"body": message_id}}, idem), 7


async def connect(dsn: str) -> psycopg.AsyncConnection:
    return await psycopg.AsyncConnection.connect(dsn, autocommit=True)


async def rows(conn, key: str) -> list[tuple[str, str]]:
    return await (await conn.execute(
        "SELECT id, status FROM messages WHERE idempotency_key = %s ORDER BY created_at, id", (key,))).fetchall()


async def test_a_key_already_held_returns_its_holder_and_stores_nothing(pg_dsn):
    async with await connect(pg_dsn) as conn:
        await schema.migrate(conn)
        assert await messages_db.insert_many(conn, [keyed("first", "k1"), keyed("plain", None)]) == {}
        taken = await messages_db.insert_many(conn, [keyed("again", "k1", FP_B), keyed("other", "k2")])
        assert taken == {"k1": KeyHolder("first", FP_A, "queued")}
        assert await rows(conn, "k1") == [("first", "queued")]
        assert await rows(conn, "k2") == [("other", "queued")]  # the rest of the batch is stored
        assert await messages_db.status(conn, "plain") == "queued"
        assert await messages_db.status(conn, "again") is None


async def test_the_holder_is_returned_in_whatever_state_it_is_until_withdrawn(pg_dsn):
    async with await connect(pg_dsn) as conn:
        await schema.migrate(conn)
        await messages_db.insert_many(conn, [keyed("first", "k")])
        for status in ("claimed", "delivered"):
            await conn.execute("UPDATE messages SET status = %s WHERE id = 'first'", (status,))
            assert (await messages_db.insert_many(conn, [keyed(f"retry-{status}", "k")]))["k"].status == status


async def test_a_withdrawn_message_gives_its_key_back(pg_dsn):
    async with await connect(pg_dsn) as conn:
        await schema.migrate(conn)
        await messages_db.insert_many(conn, [keyed("first", "k")])
        assert await messages_db.cancel(conn, "first")
        assert await messages_db.insert_many(conn, [keyed("retry", "k")]) == {}
        assert await rows(conn, "k") == [("first", "cancelled"), ("retry", "queued")]
        assert (await messages_db.insert_many(conn, [keyed("third", "k")]))["k"].id == "retry"


async def test_a_holder_committed_while_the_insert_waited_is_returned(pg_dsn):
    """The concurrent duplicate: another webapp's INSERT of the key is not committed yet when
    this one starts; this one waits for it and then returns it (not a unique violation, not a
    second row)."""
    async with await connect(pg_dsn) as a, await connect(pg_dsn) as b:
        await schema.migrate(a)
        async with a.transaction():
            await messages_db.insert_many(a, [keyed("from-a", "k")])
            racing = asyncio.create_task(messages_db.insert_many(b, [keyed("from-b", "k")]))
            await asyncio.sleep(0.3)
            assert not racing.done(), "the second INSERT did not wait for the first"
        assert await racing == {"k": KeyHolder("from-a", FP_A, "queued")}
        assert await rows(a, "k") == [("from-a", "queued")]


async def test_a_holder_rolled_back_while_the_insert_waited_leaves_the_key_to_it(pg_dsn):
    async with await connect(pg_dsn) as a, await connect(pg_dsn) as b:
        await schema.migrate(a)
        try:
            async with a.transaction():
                await messages_db.insert_many(a, [keyed("from-a", "k")])
                racing = asyncio.create_task(messages_db.insert_many(b, [keyed("from-b", "k")]))
                await asyncio.sleep(0.3)
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        assert await racing == {}
        assert await rows(a, "k") == [("from-b", "queued")]


async def test_a_holder_withdrawn_while_the_insert_waited_frees_the_key_for_it(pg_dsn):
    async with await connect(pg_dsn) as a, await connect(pg_dsn) as b:
        await schema.migrate(a)
        await messages_db.insert_many(a, [keyed("first", "k")])
        async with a.transaction():
            assert await messages_db.cancel(a, "first")  # the row stays locked until commit
            racing = asyncio.create_task(messages_db.insert_many(b, [keyed("retry", "k")]))
            await asyncio.sleep(0.3)
            assert not racing.done(), "the INSERT did not wait for the withdrawal"
        assert await racing == {}
        assert await rows(a, "k") == [("first", "cancelled"), ("retry", "queued")]
