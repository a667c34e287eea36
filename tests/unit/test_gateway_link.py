"""The gateway link (runtime/gateway_link.py) against a scripted websocket: an answer finds its
request by its ref, whatever the order; an answer whose request was abandoned is ignored; a
gateway that echoes no ref is answered in order; and a connection that ends fails every pending
request and reports the close once."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from wacluster.runtime.gateway_link import GatewayClosed, GatewayLink
from wacluster_testenv.eventually import eventually_async

pytestmark = pytest.mark.unit


class _Text:
    type = aiohttp.WSMsgType.TEXT

    def __init__(self, data: dict) -> None:
        self.data = data

    def json(self) -> dict:
        return self.data


class ScriptedSocket:
    """The gateway's side, played by the test: `answer` queues a frame for the link to read."""

    def __init__(self) -> None:
        self.frames: list[dict] = []
        self.incoming: asyncio.Queue = asyncio.Queue()
        self.closed = False

    async def receive_json(self, timeout=None) -> dict:
        return {"type": "connected"}

    async def send_json(self, frame: dict) -> None:
        self.frames.append(json.loads(json.dumps(frame)))

    def answer(self, data: dict | None) -> None:
        self.incoming.put_nowait(data)  # None: the connection ends

    def __aiter__(self):
        return self

    async def __anext__(self):
        data = await self.incoming.get()
        if data is None:
            raise StopAsyncIteration
        return _Text(data)

    def exception(self):
        return None

    async def close(self) -> None:
        self.closed = True


class Session:
    def __init__(self, socket: ScriptedSocket) -> None:
        self.socket = socket

    async def ws_connect(self, url, **kw) -> ScriptedSocket:
        return self.socket


async def opened_link() -> tuple[GatewayLink, ScriptedSocket, list[str]]:
    socket, closes = ScriptedSocket(), []

    async def closed(reason: str) -> None:
        closes.append(reason)

    link = GatewayLink(Session(socket), "http://gateway", "+1555", 0, "wacore1", 1, on_closed=closed)
    await link.open()
    return link, socket, closes


async def test_answers_find_their_requests_by_ref_in_any_order_and_an_abandoned_one_is_ignored():
    link, socket, _ = await opened_link()
    first = await link.send([{"id": "a"}])
    second = await link.send([{"id": "b"}])
    assert [f["ref"] for f in socket.frames] == [1, 2]
    socket.answer({"type": "ack", "ids": ["b"], "ref": 2})
    assert await second == ["b"] and not first.done()
    link.abandon(first)  # its ack wait ran out
    socket.answer({"type": "ack", "ids": ["a"], "ref": 1})  # late: nobody waits for it any more
    known = asyncio.create_task(link.already_delivered(["a", "c"]))
    await eventually_async(lambda: len(socket.frames) == 3, 30, interval=0.01, what="the query sent")
    socket.answer({"type": "known", "ids": ["a"], "ref": 3})
    assert await known == {"a"}
    assert first.cancelled()
    await link.close()


async def test_a_gateway_that_echoes_no_ref_is_answered_in_request_order():
    link, socket, _ = await opened_link()
    first = await link.send([{"id": "a"}])
    second = await link.send([{"id": "b"}])
    socket.answer({"type": "ack", "ids": ["a"]})
    socket.answer({"type": "ack", "ids": ["b"]})
    assert (await first, await second) == (["a"], ["b"])
    await link.close()


async def test_a_connection_that_ends_fails_what_is_pending_and_reports_the_close_once():
    link, socket, closes = await opened_link()
    pending = await link.send([{"id": "a"}])
    socket.answer(None)
    with pytest.raises(GatewayClosed, match="connection closed"):
        await pending
    with pytest.raises(GatewayClosed):
        await link.send([{"id": "b"}])
    await link.close()
    assert closes == ["connection closed"]


async def test_closing_it_ourselves_reports_nothing():
    link, socket, closes = await opened_link()
    pending = await link.send([{"id": "a"}])
    await link.close()
    with pytest.raises(GatewayClosed):
        await pending
    assert closes == [] and socket.closed
