"""The sandbox counts every send of an id already delivered as a duplicate, even one it then refuses
or loses: the Cloud API has no id check, so a chaos run that counted only the sends the sandbox
acknowledged would hide second sends. An in-process sandbox, spoken to over its websocket."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from wacluster.runtime.sandbox import Gateway

pytestmark = pytest.mark.unit


async def _connect(client: TestClient, node: str, epoch: int):
    ws = await client.ws_connect(f"/connect?account=%2B15550001111&shard=0&node={node}&epoch={epoch}")
    assert (await ws.receive_json())["type"] == "connected"
    return ws


def _send(message_id: str) -> dict:
    return {"type": "send", "ref": message_id, "messages": [{"id": message_id, "to": "+15551234567"}]}


async def _until_acked(ws, message_id: str) -> None:
    while True:
        frame = await ws.receive_json(timeout=5)
        if frame["type"] == "ack":
            assert frame["ids"] == [message_id]
            return


async def test_a_resend_in_a_batch_cut_by_a_connection_reset_is_a_duplicate():
    gateway = Gateway()
    async with TestClient(TestServer(gateway.app())) as client:
        ws = await _connect(client, "wacore1", 1)
        await ws.send_json(_send("m1"))
        await _until_acked(ws, "m1")
        await client.post("/faults", json={"reset_on_send": 1})
        # The next batch repeats m1: its first half reaches the recipient, then the connection resets.
        await ws.send_json({"type": "send", "messages": [{"id": "m1", "to": "+15551234567"},
                                                         {"id": "m2", "to": "+15551234567"}]})
        while not (await ws.receive()).type.name.startswith("CLOS"):
            pass
        report = await (await client.get("/inspect/deliveries")).json()
    assert [(d["id"], d["on"]) for d in report["duplicates"]] == [("m1", "live")]
    assert report["send_attempts"] == {"m1": 2, "m2": 1}


async def test_a_resend_the_sandbox_swallows_is_a_duplicate():
    gateway = Gateway()
    async with TestClient(TestServer(gateway.app())) as client:
        ws = await _connect(client, "wacore1", 1)
        await ws.send_json(_send("m1"))
        await _until_acked(ws, "m1")
        await client.post("/faults", json={"swallow_sends": 1})
        await ws.send_json(_send("m1"))  # lost in transit, but it was sent a second time
        await ws.send_json(_send("m2"))
        await _until_acked(ws, "m2")
        report = await (await client.get("/inspect/deliveries")).json()
    assert [(d["id"], d["on"]) for d in report["duplicates"]] == [("m1", "live")]
    assert report["send_attempts"] == {"m1": 2, "m2": 1}


async def test_a_first_send_the_sandbox_swallows_is_not_a_duplicate_when_resent():
    gateway = Gateway()
    async with TestClient(TestServer(gateway.app())) as client:
        ws = await _connect(client, "wacore1", 1)
        await client.post("/faults", json={"swallow_sends": 1})
        await ws.send_json(_send("m1"))  # never delivered: the resend is the first delivery
        await ws.send_json(_send("m1"))
        await _until_acked(ws, "m1")
        report = await (await client.get("/inspect/deliveries")).json()
    assert report["duplicates"] == [] and report["send_attempts"] == {"m1": 2}
