"""The sender never dies silently (runtime/coreapp/sender.py, runtime/gateway_link.py): a write on
a connection that was reset surfaces as GatewayClosed, ends the session (fence) and leaves the
batch to the backlog scan, and the sender goes on with the next session; a failure nobody
foresaw is logged and the sender restarted by its supervisor, the batch it held marked lost."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager

import aiohttp
import pytest

from wacluster.domain.coreapp_state import CoreappState as S
from wacluster.domain.fencing import ShardLease
from wacluster.runtime.coreapp.outbox import Claimed, Outbox
from wacluster.runtime.coreapp.ownership import Session
from wacluster.runtime.coreapp.role import Coreapp, CoreappConfig
from wacluster.runtime.supervision import Policy, Supervisor
from wacluster.runtime.gateway_link import GatewayClosed, GatewayLink
from wacluster.runtime.node import NodeIdentity
from wacluster_testenv.eventually import eventually_async

pytestmark = pytest.mark.unit


class Database:
    """Records the statements the coreapp runs; every UPDATE matches its rows."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, object]] = []

    @asynccontextmanager
    async def connection(self, timeout=None):
        yield self

    async def execute(self, sql, params=None):
        self.statements.append((sql, params))
        return _Cursor()

    def delivered(self) -> list[str]:
        return [i for sql, params in self.statements if sql.startswith("UPDATE messages SET status = 'delivered'")
                for i in params[2]]


class _Cursor:
    rowcount = 1


class ResetSocket:
    """A websocket whose transport was reset under it: every write fails as aiohttp fails it."""

    closed = False

    async def send_json(self, frame) -> None:
        raise aiohttp.ClientConnectionResetError("Cannot write to closing transport")

    async def close(self) -> None:
        self.closed = True


class Gateway:
    """A link that acknowledges every batch at once (or fails its first send with `error`)."""

    settles_itself = False

    def __init__(self, error: BaseException | None = None) -> None:
        self.error, self.frames = error, []

    async def send(self, messages):
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        self.frames.append([m["id"] for m in messages])
        future = asyncio.get_running_loop().create_future()
        future.set_result([m["id"] for m in messages])
        return future

    def abandon(self, future) -> None:
        future.cancel()

    async def close(self) -> None:
        pass


def coreapp_serving_on(link, db: Database) -> Coreapp:
    coreapp = Coreapp(NodeIdentity("wacore1", "n1", "test", "127.0.0.1:0"), db, "http://unused")
    for state in (S.STANDBY, S.TAKING_OVER):
        coreapp.lifecycle.move(state, "test")
    serve(coreapp, link)
    return coreapp


def serve(coreapp: Coreapp, link) -> Session:
    lease = ShardLease(0, 1, ttl=3600)
    lease.confirmed(time.monotonic())
    coreapp.session = Session(0, 1, lease, link=link, outbox=Outbox(100))
    coreapp.lifecycle.move(S.SERVING, "test")
    coreapp.ownership.session_started.set()
    return coreapp.session


def messages(*ids: str) -> list[Claimed]:
    return [Claimed(i, "+15550001", {"type": "text", "text": {"body": i}}) for i in ids]


async def test_a_write_on_a_reset_connection_is_reported_as_the_gateway_closing():
    link = GatewayLink(None, "http://unused", "+1555", 0, "wacore1", 1, on_closed=None)
    link.ws = ResetSocket()
    with pytest.raises(GatewayClosed, match="ClientConnectionResetError"):
        await link.send([{"id": "m1", "to": "+15550001", "body": {}}])
    with pytest.raises(GatewayClosed):  # and the link stays closed: nothing is written after that
        await link.send([{"id": "m2", "to": "+15550001", "body": {}}])


async def test_a_reset_under_the_sender_ends_the_session_and_sending_resumes_on_the_next():
    db = Database()
    broken = GatewayLink(None, "http://unused", "+1555", 0, "wacore1", 1, on_closed=None)
    broken.ws = ResetSocket()
    coreapp = coreapp_serving_on(broken, db)
    coreapp.session.outbox.put(messages("m1", "m2"))
    sender = asyncio.create_task(coreapp.sender.run())
    acks = asyncio.create_task(coreapp.sender.record_acks())
    try:
        await eventually_async(lambda: coreapp.lifecycle.state is S.STANDBY, 30, interval=0.01,
                               what="the session fenced after the failed write")
        assert "the gateway connection failed while sending" in coreapp.lifecycle.history[-1][2]
        assert not sender.done(), "the sender died with the connection"
        coreapp.lifecycle.move(S.TAKING_OVER, "test: retaken")
        gateway = Gateway()
        session = serve(coreapp, gateway)
        session.outbox.put(messages("m3"))  # m1, m2 come back through the backlog scan
        await eventually_async(lambda: "m3" in db.delivered(), 30, interval=0.01, what="m3 delivered and recorded")
        assert gateway.frames == [["m3"]] and session.outbox.unsettled == 0
    finally:
        sender.cancel()
        acks.cancel()
        await asyncio.gather(sender, acks, return_exceptions=True)


async def test_an_unforeseen_failure_restarts_the_sender_and_its_batch_is_lost_not_dropped(caplog):
    db = Database()
    gateway = Gateway(error=KeyError("a bug"))
    coreapp = coreapp_serving_on(gateway, db)
    outbox = coreapp.session.outbox
    outbox.put(messages("m1"))
    supervisor = Supervisor(logging.getLogger("test.sender"), restart_pause=0)
    supervisor.add("sender", coreapp.sender.run, Policy.RESTART, coreapp.sender.sender_failed)
    supervisor.add("acks", coreapp.sender.record_acks, Policy.RESTART, coreapp.sender.acks_failed)

    async def until_sent_again():
        await eventually_async(lambda: outbox.has_lost, 30, interval=0.01, what="m1 marked lost")
        assert outbox.take_lost() == {"m1"}
        outbox.put(messages("m1"))  # as the backlog scan does once the gateway says it lacks m1
        await eventually_async(lambda: "m1" in db.delivered(), 30, interval=0.01, what="m1 delivered")

    with caplog.at_level(logging.WARNING):
        await supervisor.run(until_sent_again)
    assert any("restarting task sender because it failed: KeyError('a bug')" in r.getMessage() for r in caplog.records)
    assert gateway.frames == [["m1"]]


class SilentGateway(Gateway):
    """Never acknowledges the batches listed in `silent_for`."""

    def __init__(self, silent_for: set[str]) -> None:
        super().__init__()
        self.silent_for = silent_for

    async def send(self, messages):
        ids = [m["id"] for m in messages]
        if self.silent_for & set(ids):
            self.frames.append(ids)
            return asyncio.get_running_loop().create_future()  # the ack that never comes
        return await super().send(messages)


async def test_a_batch_whose_ack_never_comes_holds_up_no_other_and_is_lost_after_the_ack_timeout():
    db = Database()
    gateway = SilentGateway({"m1"})
    coreapp = Coreapp(NodeIdentity("wacore1", "n1", "test", "127.0.0.1:0"), db, "http://unused",
                      CoreappConfig(ack_timeout=0.2))
    for state in (S.STANDBY, S.TAKING_OVER):
        coreapp.lifecycle.move(state, "test")
    outbox = serve(coreapp, gateway).outbox
    sender = asyncio.create_task(coreapp.sender.run())
    acks = asyncio.create_task(coreapp.sender.record_acks())
    try:
        outbox.put(messages("m1"))
        await eventually_async(lambda: gateway.frames == [["m1"]], 30, interval=0.01, what="m1 sent")
        outbox.put(messages("m2"))
        await eventually_async(lambda: "m2" in db.delivered(), 30, interval=0.01, what="m2 recorded")
        assert "m1" not in db.delivered()
        await eventually_async(lambda: outbox.has_lost, 30, interval=0.01, what="m1 lost after the ack timeout")
        assert outbox.take_lost() == {"m1"} and outbox.unsettled == 0
    finally:
        sender.cancel()
        acks.cancel()
        await asyncio.gather(sender, acks, return_exceptions=True)
