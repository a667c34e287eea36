"""The coreapp's control port in-process (runtime/coreapp/control.py), with an in-memory stand-in
for the database's claim: bodies are validated (400 in the API's error shape, never a 500), only
the serving owner of the shard takes a batch, the outbox is bounded (503 and nothing claimed), and
only what the claim returned is taken in hand."""

from __future__ import annotations

import json
import time
from contextlib import asynccontextmanager

import pytest
from aiohttp.test_utils import TestClient, TestServer

from wacluster.domain.coreapp_state import CoreappState as S
from wacluster.domain.fencing import ShardLease
from wacluster.runtime.coreapp.control import control_app
from wacluster.runtime.coreapp.ownership import Session
from wacluster.runtime.coreapp.outbox import Outbox
from wacluster.runtime.coreapp.role import Coreapp, CoreappConfig
from wacluster.runtime.internal_auth import bearer
from wacluster.runtime.node import NodeIdentity

pytestmark = pytest.mark.unit

TOKEN = "the-clusters-internal-token-0123"  # every call here is the cluster's own (test_internal_token.py: others)


class StoredRows:
    """Answers the claim statement as PostgreSQL would for rows queued in shard 0."""

    def __init__(self, queued: set[str], fail: bool = False) -> None:
        self.queued, self.fail, self.claims = set(queued), fail, 0

    @asynccontextmanager
    async def connection(self, timeout=None):
        yield self

    async def execute(self, sql, params):
        self.claims += 1
        if self.fail:
            raise OSError("connection refused")
        taken = [i for i in params["ids"] if i in self.queued and params["shard"] == 0]
        self.queued -= set(taken)
        rows = [(i, "+15550001", 0, {"type": "text", "text": {"body": i}}) for i in taken]
        return _Cursor(rows)


class _Cursor:
    def __init__(self, rows) -> None:
        self.rows = rows

    async def fetchall(self):
        return self.rows


def serving_coreapp(pool, capacity: int = 10, shard: int = 0) -> Coreapp:
    coreapp = Coreapp(NodeIdentity("wacore1", "n1", "test", "127.0.0.1:0"), pool, "http://unused",
                      CoreappConfig(outbox_capacity=capacity))
    lease = ShardLease(shard, 1, ttl=3600)
    lease.confirmed(time.monotonic())
    for state in (S.STANDBY, S.TAKING_OVER, S.SERVING):
        coreapp.lifecycle.move(state, "test")
    coreapp.session = Session(shard, 1, lease, link=None, outbox=Outbox(capacity))
    return coreapp


@asynccontextmanager
async def control(coreapp):
    async with TestClient(TestServer(control_app(coreapp, TOKEN)), headers=bearer(TOKEN)) as client:
        yield client


def hand_off(*ids: str, shard: int = 0) -> dict:
    return {"shard": shard, "messages": [{"id": i, "to": "+15550001", "body": {}} for i in ids]}


@pytest.mark.parametrize("body, why", [
    (b"{not json", "not valid JSON"), (b"[1, 2]", "JSON object"), (b'{"messages": []}', "shard"),
    (b'{"shard": "0", "messages": [{"id": "m1"}]}', "shard"), (b'{"shard": -1, "messages": [{"id": "m1"}]}', "shard"),
    (b'{"shard": 0, "messages": "m1"}', "messages"), (b'{"shard": 0, "messages": []}', "messages"),
    (b'{"shard": 0, "messages": [{"to": "+1555"}]}', "messages.0.id"),
    (b'{"shard": 0, "messages": [{"id": "m1"}], "extra": 1}', "extra"),
])
async def test_a_malformed_hand_off_is_a_400_in_the_api_error_shape(body, why):
    pool = StoredRows({"m1"})
    async with control(serving_coreapp(pool)) as client:
        resp = await client.post("/messages", data=body, headers={"Content-Type": "application/json"})
        reply = await resp.json()
    assert resp.status == 400, reply
    (error,) = reply["errors"]
    assert error["code"] == 1009 and why in error["details"], reply
    assert pool.claims == 0


async def test_only_the_serving_owner_of_the_shard_takes_a_batch():
    pool = StoredRows({"m1"})
    coreapp = serving_coreapp(pool)
    async with control(coreapp) as client:
        other_shard = await client.post("/messages", json=hand_off("m1", shard=1))
        assert other_shard.status == 409 and "is not serving shard 1" in (await other_shard.json())["errors"][0]["details"]
        coreapp.lifecycle.move(S.DRAINING, "test: stopping")
        draining = await client.post("/messages", json=hand_off("m1"))
        assert draining.status == 409
    assert pool.claims == 0 and coreapp.session.outbox.unsettled == 0


async def test_only_the_rows_the_claim_returned_are_taken_in_hand():
    pool = StoredRows({"m1", "m3"})
    coreapp = serving_coreapp(pool)
    async with control(coreapp) as client:
        resp = await client.post("/messages", json=hand_off("m1", "m2", "m3", "m1"))
        reply = await resp.json()
    assert resp.status == 202
    assert reply == {"accepted": ["m1", "m2", "m3", "m1"], "claimed": ["m1", "m3"]}
    outbox = coreapp.session.outbox
    assert [m.id for m in await outbox.next_batch(10)] == ["m1", "m3"] and outbox.free == 8


async def test_an_owner_with_a_full_outbox_answers_503_and_claims_nothing():
    pool = StoredRows({f"m{i}" for i in range(5)})
    coreapp = serving_coreapp(pool, capacity=3)
    async with control(coreapp) as client:
        first = await client.post("/messages", json=hand_off("m0", "m1"))
        assert first.status == 202
        full = await client.post("/messages", json=hand_off("m2", "m3"))
        reply = await full.json()
    assert full.status == 503 and full.headers["Retry-After"] and reply["errors"][0]["code"] == 1011
    assert "holds 2 of at most 3" in reply["errors"][0]["details"]
    assert pool.claims == 1 and pool.queued == {"m2", "m3", "m4"}  # still queued, for this owner or the next


async def test_once_full_an_owner_leaves_every_hand_off_to_its_backlog_until_the_backlog_is_drained():
    """Order: a batch that would fit now must not overtake the rows left queued before it."""
    pool = StoredRows({f"m{i}" for i in range(5)})
    coreapp = serving_coreapp(pool, capacity=3)
    async with control(coreapp) as client:
        assert (await client.post("/messages", json=hand_off("m0", "m1"))).status == 202
        assert (await client.post("/messages", json=hand_off("m2", "m3"))).status == 503
        coreapp.session.outbox.settle(["m0", "m1"])  # room again
        fits = await client.post("/messages", json=hand_off("m4"))
    assert fits.status == 503 and coreapp.session.outbox.overflowing
    assert coreapp.backlog._wake.is_set()  # the backlog was told to send them
    assert pool.queued == {"m2", "m3", "m4"}


async def test_a_claim_the_database_did_not_answer_is_a_503_and_left_to_the_backlog_scan():
    coreapp = serving_coreapp(StoredRows({"m1"}, fail=True))
    async with control(coreapp) as client:
        resp = await client.post("/messages", json=hand_off("m1"))
        assert resp.status == 503 and "could not claim" in json.dumps(await resp.json())
    outbox = coreapp.session.outbox
    assert outbox.unsettled == 0 and outbox.take_lost() == {"m1"}  # in doubt: the scan asks


async def test_the_heartbeat_says_what_the_state_machine_says():
    coreapp = serving_coreapp(StoredRows(set()))
    async with control(coreapp) as client:
        beat = await (await client.get("/heartbeat")).json()
        assert (beat["serving"], beat["shard"], beat["epoch"], beat["stopping"], beat["state"]) == (True, 0, 1, False, "serving")
        coreapp.lifecycle.move(S.DRAINING, "test")
        beat = await (await client.get("/heartbeat")).json()
        assert (beat["serving"], beat["stopping"], beat["state"]) == (True, True, "draining")


class BacklogRows(StoredRows):
    """Also answers the backlog's page and reclaim statements, rows in the order they were stored;
    `during_page` runs once a page is read (a webapp storing and handing off meanwhile)."""

    def __init__(self) -> None:
        super().__init__(set())
        self.stored: list[str] = []
        self.during_page = None

    def store(self, message_id: str) -> None:
        self.stored.append(message_id)
        self.queued.add(message_id)

    async def execute(self, sql, params):
        if "after_at" in params:  # a page of the backlog
            start = self.stored.index(params["after_id"]) + 1 if params["after_id"] else 0
            page = [(i, None, False) for i in self.stored[start:] if i in self.queued][:params["limit"]]
            hook, self.during_page = self.during_page, None
            if hook is not None:
                await hook()
            return _Cursor(page)
        if "mine" in params:  # the backlog's reclaim
            taken = [i for i in params["ids"] if i in self.queued]
            self.queued -= set(taken)
            return _Cursor([(i, "+15550001", 0, {"type": "text", "text": {"body": i}}) for i in taken])
        return await super().execute(sql, params)


class KnowsNothing:
    async def already_delivered(self, ids):
        return set()


async def test_a_hand_off_refused_while_the_backlog_pass_ends_is_not_overtaken_by_the_next():
    """The pass read its last page before m1 was stored; m1's hand-off came while still
    overflowing and was refused. m2 (the same recipient's next message, sent once m1 was answered)
    must not be taken in hand before m1."""
    from wacluster.runtime.coreapp.control import Refusal, accept

    pool = BacklogRows()
    coreapp = serving_coreapp(pool, capacity=3)
    session = coreapp.session
    session.link = KnowsNothing()
    session.outbox.overflowing = True  # an earlier refusal

    async def m1_stored_and_refused():
        pool.store("m1")
        assert isinstance(await accept(coreapp, 0, ["m1"]), Refusal)

    pool.during_page = m1_stored_and_refused
    await coreapp.backlog.drain(session)
    pool.store("m2")
    await accept(coreapp, 0, ["m2"])
    await coreapp.backlog.drain(session)
    assert [m.id for m in await session.outbox.next_batch(10)] == ["m1", "m2"]
    assert not session.outbox.overflowing  # the pass that refused nothing ended the overflow
