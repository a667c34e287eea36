"""Claiming a message against a real PostgreSQL (db/messages.py): a coreapp sends a message only if,
in one statement, the row is still queued, belongs to the shard the coreapp owns at its current
epoch with a live lease, and is claimed by it. A webapp's withdrawal changes the row only while it
is queued too, so the two race on one row and exactly one wins: a withdrawn message (the API's
503) is never sent, a claimed one (the API's 201) is sent, and by one claimer only."""

from __future__ import annotations

import asyncio
import json
import random

import psycopg
import pytest

from wacluster.db import messages as messages_db
from wacluster.db import schema
from wacluster.db.messages import Claimer
from wacluster_testenv.eventually import eventually_async

pytestmark = pytest.mark.integration

OWNER = Claimer("wacore1", shard=0, epoch=2, session="session-a")
OTHER_SHARD = Claimer("wacore2", shard=1, epoch=1, session="session-b")


@pytest.fixture
async def db(pg_dsn):
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        await schema.migrate(conn)
        await conn.execute(
            "INSERT INTO shard_map (shard, coreapp, epoch, lease_until) VALUES "
            "(0, 'wacore1', 2, now() + interval '1 hour'), (1, 'wacore2', 1, now() + interval '1 hour')")
        yield conn


async def store(conn, *rows: tuple[str, int], status: str = "queued") -> None:
    for message_id, shard in rows:
        await conn.execute(
            "INSERT INTO messages (id, recipient, route_hash, shard, body, status) VALUES (%s, %s, %s, %s, %s, %s)",
            (message_id, "+15550001", shard, shard, json.dumps({"type": "text", "text": {"body": message_id}}),
             status))


async def statuses(conn) -> dict[str, str]:
    return dict(await (await conn.execute("SELECT id, status FROM messages")).fetchall())


async def test_a_claim_takes_only_the_queued_rows_of_the_claimers_shard(db):
    await store(db, ("queued-0", 0), ("queued-1", 1))
    await store(db, ("delivered-0", 0), status="delivered")
    await store(db, ("cancelled-0", 0), status="cancelled")
    ids = ["queued-0", "queued-1", "delivered-0", "cancelled-0", "never-stored"]
    claimed = await messages_db.claim(db, OWNER, ids)
    assert [(m.id, m.shard, m.body["text"]["body"]) for m in claimed] == [("queued-0", 0, "queued-0")]
    assert await messages_db.claim(db, OWNER, ids) == []  # a second hand-off of the same batch
    assert await statuses(db) == {"queued-0": "claimed", "queued-1": "queued", "delivered-0": "delivered",
                                  "cancelled-0": "cancelled"}


@pytest.mark.parametrize("change", [
    "UPDATE shard_map SET epoch = 3 WHERE shard = 0",                          # promoted away
    "UPDATE shard_map SET revoked = true WHERE shard = 0",                     # revoked
    "UPDATE shard_map SET lease_until = now() - interval '1 s' WHERE shard = 0",  # lease ran out
    "UPDATE shard_map SET coreapp = 'wacore3' WHERE shard = 0",                # another owner
])
async def test_a_coreapp_that_no_longer_owns_its_shard_at_its_epoch_claims_nothing(db, change):
    await store(db, ("queued-0", 0))
    await db.execute(change)
    assert await messages_db.claim(db, OWNER, ["queued-0"]) == []
    assert await messages_db.reclaim(db, OWNER, ["queued-0"], []) == []
    assert await statuses(db) == {"queued-0": "queued"}


async def test_a_claimed_row_cannot_be_withdrawn_and_a_withdrawn_row_cannot_be_claimed(db):
    await store(db, ("first-claimed", 0), ("first-withdrawn", 0))
    assert [m.id for m in await messages_db.claim(db, OWNER, ["first-claimed"])] == ["first-claimed"]
    assert not await messages_db.cancel(db, "first-claimed")   # the webapp answers 201: it will be sent
    assert await messages_db.cancel(db, "first-withdrawn")     # the webapp answers 503
    assert await messages_db.claim(db, OWNER, ["first-withdrawn"]) == []
    assert await messages_db.reclaim(db, OWNER, ["first-withdrawn"], ["first-withdrawn"]) == []


async def test_withdrawal_and_claims_race_and_exactly_one_side_wins_each_message(db, pg_dsn):
    """Per message, a webapp withdraws it (its last routing attempt timed out) while the owner
    claims it from the hand-off, the owner's backlog scan reclaims it, and a webapp's retry hands
    it over again, each on its own connection, in a random order. The invariant: withdrawn (503)
    ⇒ no claim got it (never sent); not withdrawn (201) ⇒ exactly one claim got it (sent once)."""
    ids = [f"race-{i:03d}" for i in range(150)]
    await store(db, *((i, 0) for i in ids))
    connections = [await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) for _ in range(4)]
    rng = random.Random(7)
    outcomes: dict[str, tuple[bool, int]] = {}
    try:
        for message_id in ids:
            webapp, handed, scan, retry = connections

            async def withdraw():
                return await messages_db.cancel(webapp, message_id)

            async def hand_off():
                return [m.id for m in await messages_db.claim(handed, OWNER, [message_id])]

            async def backlog_scan():
                return [m.id for m in await messages_db.reclaim(scan, OWNER, [message_id], [])]

            async def retried_hand_off():
                return [m.id for m in await messages_db.claim(retry, OWNER, [message_id])]

            contenders = [withdraw, hand_off, backlog_scan, retried_hand_off]
            rng.shuffle(contenders)
            results = dict(zip([c.__name__ for c in contenders], await asyncio.gather(*(c() for c in contenders))))
            sends = sum(len(results[name]) for name in ("hand_off", "backlog_scan", "retried_hand_off"))
            outcomes[message_id] = (results["withdraw"], sends)
    finally:
        for conn in connections:
            await conn.close()
    answered_503 = [i for i, (withdrawn, _) in outcomes.items() if withdrawn]
    answered_201 = [i for i, (withdrawn, _) in outcomes.items() if not withdrawn]
    assert [i for i in answered_503 if outcomes[i][1] != 0] == [], "a withdrawn message was claimed for sending"
    assert [i for i in answered_201 if outcomes[i][1] != 1] == [], "an accepted message was claimed not exactly once"
    final = await statuses(db)
    assert {i for i in ids if final[i] == "cancelled"} == set(answered_503)
    assert {i for i in ids if final[i] == "claimed"} == set(answered_201)


async def test_a_claim_waits_for_a_promotion_in_flight_and_then_claims_nothing(db, pg_dsn):
    """The ownership check and the claim are one step: a promotion that commits while the claim
    runs is either wholly before it (nothing claimed) or wholly after it."""
    await store(db, ("queued-0", 0))
    async with await psycopg.AsyncConnection.connect(pg_dsn) as master:  # one open transaction
        await master.execute("UPDATE shard_map SET epoch = epoch + 1, coreapp = 'wacore3' WHERE shard = 0")
        claim = asyncio.create_task(messages_db.claim(db, OWNER, ["queued-0"]))
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as observer:
            await eventually_async(lambda: claim_waiting_for_a_lock(observer), 30, what="the claim waiting on the row")
        await master.commit()
        assert await claim == []
    assert await statuses(db) == {"queued-0": "queued"}


async def claim_waiting_for_a_lock(conn) -> bool:
    row = await (await conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'WITH owner AS%'")).fetchone()
    return row[0] == 1


async def test_the_backlog_pages_through_every_unsettled_row_of_the_shard(db):
    await store(db, *((f"row-{i:02d}", 0) for i in range(7)), ("other-shard", 1))
    await store(db, ("done", 0), status="delivered")
    await db.execute("UPDATE messages SET status = 'claimed', claim_session = 'ended-session', claimed_by = 'wacore9' "
                     "WHERE id IN ('row-01', 'row-02')")
    mine = "UPDATE messages SET status = 'claimed', claim_session = %s, claimed_by = %s, claimed_epoch = %s, "
    await db.execute(mine + "claimed_at = now() WHERE id = 'row-03'",
                     (OWNER.session, OWNER.coreapp, OWNER.epoch))  # in this session's hand: not backlog
    await db.execute(mine + "claimed_at = now() - interval '1 hour' WHERE id = 'row-04'",
                     (OWNER.session, OWNER.coreapp, OWNER.epoch))  # claimed long ago: lost track of
    seen, after = [], None
    while True:
        page = await messages_db.unsettled(db, OWNER, after, limit=2, stale_after=60)
        if not page:
            break
        seen += page
        after = (page[-1].created_at, page[-1].id)
    assert sorted(u.id for u in seen) == ["row-00", "row-01", "row-02", "row-04", "row-05", "row-06"]
    assert [u.id for u in seen if u.mine] == ["row-04"]
    reclaimed = await messages_db.reclaim(db, OWNER, [u.id for u in seen], [u.id for u in seen if u.mine])
    assert sorted(m.id for m in reclaimed) == sorted(u.id for u in seen)
    rows = await (await db.execute("SELECT count(*) FROM messages WHERE claim_session = %s AND claimed_by = %s "
                                   "AND claimed_epoch = %s", (OWNER.session, OWNER.coreapp, OWNER.epoch))).fetchone()
    assert rows[0] == 7  # the six reclaimed and row-03, still in hand
    assert await messages_db.unsettled(db, OWNER, None, limit=10, stale_after=60) == []


async def test_claims_hand_back_their_rows_in_the_order_asked_whatever_order_postgresql_finds_them(db):
    # One recipient's messages must reach the gateway in the order they were stored; the caller asks
    # in that order ((created_at, id) for the backlog, the batch's order for a hand-off). PostgreSQL
    # finds rows in whatever order its plan gives: here a scan of the table, where an updated row
    # (a claim taken over) lies after the rows stored later.
    stored_order = [f"row-{n}" for n in range(10)]
    await store(db, *((i, 0) for i in stored_order))
    claimed = await messages_db.claim(db, OWNER, stored_order[:5])
    assert [m.id for m in claimed] == stored_order[:5]
    await db.execute("UPDATE messages SET claim_session = 'ended-session' WHERE id = ANY(%s)", (stored_order[:5],))
    await db.execute("SET enable_indexscan = off")
    await db.execute("SET enable_bitmapscan = off")
    reclaimed = await messages_db.reclaim(db, OWNER, stored_order, [])
    assert [m.id for m in reclaimed] == stored_order


async def test_delivery_is_recorded_for_claimed_rows(db):
    await store(db, ("a", 0), ("b", 0))
    await messages_db.claim(db, OWNER, ["a", "b"])
    assert await messages_db.mark_delivered(db, ["a", "b", "unknown"], OWNER.coreapp, OWNER.epoch) == 2
    assert await statuses(db) == {"a": "delivered", "b": "delivered"}


async def test_a_resize_moves_claimed_rows_too_and_the_new_owner_takes_them_from_its_backlog(db):
    """Rows an owner had claimed when the shard count changed go to their new shard as they are
    (claimed by a session that has ended), so its new owner's backlog takes them, asking the
    gateway first; left on a shard that no longer exists they would never be sent."""
    from wacluster.db import shard_map as shard_map_db

    await store(db, ("claimed-on-1", 1))
    assert [m.id for m in await messages_db.claim(db, OTHER_SHARD, ["claimed-on-1"])] == ["claimed-on-1"]
    await db.execute("INSERT INTO master_term (term, holder) VALUES (7, 'master1')")
    await db.execute("UPDATE shard_map SET lease_until = now() - interval '1 s'")  # every owner stopped
    assert await shard_map_db.resize(db, 1, term=7, holder="master1")
    assert await (await db.execute("SELECT shard, status FROM messages")).fetchall() == [(0, "claimed")]
    await db.execute("UPDATE shard_map SET coreapp = 'wacore1', epoch = epoch + 1, lease_until = now() + interval '1 hour'")
    epoch = (await (await db.execute("SELECT epoch FROM shard_map WHERE shard = 0")).fetchone())[0]
    new_owner = Claimer("wacore1", shard=0, epoch=epoch, session="session-c")
    backlog = await messages_db.unsettled(db, new_owner, None, limit=10, stale_after=30)
    assert [row.id for row in backlog] == ["claimed-on-1"]
    assert [m.id for m in await messages_db.reclaim(db, new_owner, ["claimed-on-1"], [])] == ["claimed-on-1"]
