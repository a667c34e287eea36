"""The Cloud driver never dies silently (runtime/coreapp/cloud_gateway.py): a task of the driver
that fails closes it and tells the coreapp (which fences the session), and whatever it held
fails with GatewayClosed, so the sender hands it to the backlog scan."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from wacluster.runtime.coreapp.cloud_gateway import CloudGateway
from wacluster.runtime.gateway import CloudSettings
from wacluster.runtime.gateway_link import GatewayClosed

pytestmark = pytest.mark.unit

SETTINGS = CloudSettings("http://127.0.0.1:9", "v23.0", "1065", 80, access_token="secret-token")


def test_the_settings_never_show_the_access_token():
    assert "secret-token" not in repr(SETTINGS) and "secret-token" not in str(SETTINGS)


async def test_a_failing_dispatcher_closes_the_driver_and_fails_what_it_held():
    closed: list[str] = []

    def may_send() -> bool:
        raise RuntimeError("a bug in the lease check")

    async def on_closed(reason: str) -> None:
        closed.append(reason)
        await driver.close()

    async def on_paused(reason):
        pass

    driver = CloudGateway(None, SETTINGS, None, rate=80, in_doubt_window=30, pause_check_every=30,
                          may_send=may_send, on_paused=on_paused, on_closed=on_closed)
    batch = await driver.send([{"id": "m1", "to": "+15550001", "body": {"to": "+15550001", "type": "text",
                                                                        "text": {"body": "hi"}}}])
    await asyncio.wait_for(driver._guarded(driver._dispatch(), "dispatcher"), 5)
    assert closed == ["the Cloud driver's dispatcher failed: RuntimeError('a bug in the lease check')"]
    with pytest.raises(GatewayClosed):
        await batch
    with pytest.raises(GatewayClosed):
        await driver.send([])


class Ledger:
    """Every send may start; what was sent is remembered."""

    def __init__(self) -> None:
        self.recorded: dict[str, str] = {}
        self.started: list[str] = []

    async def start(self, ids):
        self.started += ids
        return list(ids)

    async def sent(self, wamids):
        self.recorded.update(wamids)


@asynccontextmanager
async def running_driver(messages, rate: float, ledger: Ledger) -> AsyncIterator[CloudGateway]:
    """A driver whose dispatcher runs, sending to a local server answering POST .../messages with
    `messages`; closed at the end."""
    async def nothing(*args):
        pass

    app = web.Application()
    app.router.add_post("/v23.0/1065/messages", messages)
    async with TestServer(app) as server, ClientSession() as http:
        settings = CloudSettings(str(server.make_url("")).rstrip("/"), "v23.0", "1065", rate, access_token="t")
        driver = CloudGateway(http, settings, ledger, rate=rate, in_doubt_window=30, pause_check_every=30,
                              may_send=lambda: True, on_paused=nothing, on_closed=nothing)
        dispatcher = asyncio.create_task(driver._dispatch())
        try:
            yield driver
        finally:
            dispatcher.cancel()
            await driver.close()


def text(message_id: str, to: str, body: str = "hi") -> dict:
    return {"id": message_id, "to": to, "body": {"to": to, "type": "text", "text": {"body": body}}}


async def test_a_send_waits_until_the_sends_a_window_before_it_have_left():
    """At 10 a second the 11th send's slot comes 1 s after the first, but the first is still on
    its way (the Cloud API answers it after 1.5 s; on a session without `sent_tracing` a send
    counts as left when its call ends): the 11th may go only 1.01 s after that. Before, the
    dispatcher took the pacer's 2 ms look for a permission and sent it at once."""
    arrivals: list[float] = []

    async def messages(request):
        arrivals.append(time.monotonic())
        body = await request.json()
        if body["biz_opaque_callback_data"] == "m00":
            await asyncio.sleep(1.5)
        return web.json_response({"messages": [{"id": f"wamid.{len(arrivals)}"}]})

    async with running_driver(messages, 10, Ledger()) as driver:
        batch = await driver.send([text(f"m{n:02d}", f"+1555000{n:04d}") for n in range(11)])
        assert len(await asyncio.wait_for(batch, 10)) == 11
    first_answered = arrivals[0] + 1.5
    assert arrivals[10] >= first_answered + 1.0, [round(t - arrivals[0], 3) for t in arrivals]


async def test_an_in_doubt_resend_is_counted_once_and_only_when_it_leaves():
    """A backlog scan asking twice about one row counted its resend twice, and a scan whose
    session ended before sending counted resends that never happened."""
    from wacluster.db.messages import SendState
    from wacluster.runtime import metrics

    class InDoubt(Ledger):
        async def states(self, ids, window):
            return [SendState(i, "claimed", 0.0) for i in ids]

    async def messages(request):
        return web.json_response({"messages": [{"id": "wamid.1"}]})

    def resent() -> float:
        return metrics.CLOUD_IN_DOUBT_RESENT._value.get()

    async with running_driver(messages, 80, InDoubt()) as driver:
        before = resent()
        assert await driver.already_delivered(["m1"]) == set()
        assert await driver.already_delivered(["m1"]) == set()  # asked again by a later pass
        assert resent() == before  # nothing has been sent again yet
        batch = await driver.send([text("m1", "+15550001", "again")])
        assert await asyncio.wait_for(batch, 10) == ["m1"]
    assert resent() == before + 1


async def test_a_draining_driver_finishes_the_send_under_way_and_starts_nothing_more():
    """A planned handoff waited for the whole paced queue; now only the send under way finishes,
    the rest leaves unsettled (never started) for the successor."""
    arrived: list[str] = []
    answer = asyncio.Event()

    async def messages(request):
        arrived.append((await request.json())["biz_opaque_callback_data"])
        await answer.wait()
        return web.json_response({"messages": [{"id": f"wamid.{len(arrived)}"}]})

    ledger = Ledger()
    async with running_driver(messages, 2, ledger) as driver:
        batch = await driver.send([text(f"m{n}", to, str(n))
                                   for n, to in enumerate(["+15550001", "+15550001", "+15550002", "+15550003"])])
        while not arrived:
            await asyncio.sleep(0.01)
        driver.stop_starting()
        later = await driver.send([text("m9", "+15550009", "9")])
        assert await asyncio.wait_for(later, 1) == []
        answer.set()
        settled = await asyncio.wait_for(batch, 5)
        await asyncio.sleep(1.5)  # slots at 2 a second come: nothing more leaves
    # What was marked started before the drain still went (never left in doubt); nothing else did:
    # not m1 behind m0 for the same recipient, not the queue's tail, not what came after.
    assert arrived == ledger.started and sorted(settled) == sorted(arrived) == sorted(ledger.recorded)
    assert "m1" not in arrived and "m9" not in arrived and len(arrived) < 4
