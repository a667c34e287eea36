"""`runtime.gateway.sent_tracing`: a Graph API call tells its caller when the request left (the
Cloud pacer counts sends by that), before the answer, and only once it was written."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from wacluster.runtime.gateway import CloudSettings, graph_call, sent_tracing

pytestmark = pytest.mark.unit


async def test_the_caller_hears_that_the_request_left_before_the_answer_comes():
    events: list[str] = []
    release = asyncio.Event()

    async def messages(request: web.Request) -> web.Response:
        events.append("arrived")
        await release.wait()
        return web.json_response({"messages": [{"id": "wamid.1"}]})

    app = web.Application()
    app.router.add_post("/v23.0/1/messages", messages)
    async with TestServer(app) as server, aiohttp.ClientSession(trace_configs=[sent_tracing()]) as http:
        settings = CloudSettings(str(server.make_url("")).rstrip("/"), "v23.0", "1", 80, "token")
        call = asyncio.create_task(graph_call(http, settings, "POST", settings.url("1", "messages"), 5,
                                              on_sent=lambda: events.append("left"), json={}))
        while "arrived" not in events:
            await asyncio.sleep(0.01)
        assert events == ["left", "arrived"]
        release.set()
        assert await call == (200, {"messages": [{"id": "wamid.1"}]})


async def test_a_request_that_never_connects_never_says_it_left():
    left = []
    async with aiohttp.ClientSession(trace_configs=[sent_tracing()]) as http:
        settings = CloudSettings("http://127.0.0.1:9", "v23.0", "1", 80, "token")
        assert await graph_call(http, settings, "POST", settings.url("1", "messages"), 5,
                                on_sent=lambda: left.append(1), json={}) == (None, None)
    assert left == []
