"""A coreapp's one connection to the WhatsApp gateway for the shard it owns."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

import aiohttp

log = logging.getLogger("wacluster.coreapp")


class GatewayClosed(Exception):
    """The gateway replaced or banned us, or the connection dropped."""


class GatewayLink:
    """Sends message batches and resolves them on the gateway's ack (in order)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, account: str, shard: int, node: str,
                 epoch: int, on_closed: Callable[[str], Awaitable[None]],
                 on_status: Callable[[list[dict]], Awaitable[None]] | None = None) -> None:
        self.session = session
        self.url = url.rstrip("/") + "/connect"
        self.params = {"account": account, "shard": str(shard), "node": node, "epoch": str(epoch)}
        self.on_closed = on_closed
        self.on_status = on_status
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: asyncio.Queue[asyncio.Future] = asyncio.Queue()
        self._reader: asyncio.Task | None = None
        self.closed_reason: str | None = None

    async def open(self, timeout: float = 5.0) -> None:
        self.ws = await self.session.ws_connect(self.url, params=self.params, timeout=aiohttp.ClientWSTimeout(ws_close=timeout),
                                                heartbeat=10)
        first = await self.ws.receive_json(timeout=timeout)
        if first.get("type") != "connected":
            await self.ws.close()
            raise GatewayClosed(f"gateway refused the connection: {first}")
        self._reader = asyncio.create_task(self._read(), name="gateway-reader")

    async def _read(self) -> None:
        reason = "connection closed"
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = msg.json()
                kind = data.get("type")
                if kind in ("ack", "known"):  # answers come in request order, one per request
                    future = self._pending.get_nowait()
                    if not future.done():
                        future.set_result(data["ids"])
                elif kind == "status" and self.on_status is not None:
                    await self.on_status(data.get("statuses", []))
                elif kind in ("replaced", "banned", "error"):
                    reason = f"gateway said {kind}: {data}"
                    break
        except (aiohttp.ClientError, asyncio.QueueEmpty) as exc:
            reason = f"gateway connection failed: {exc}"
        finally:
            self.closed_reason = reason
            while not self._pending.empty():
                future = self._pending.get_nowait()
                if not future.done():
                    future.set_exception(GatewayClosed(reason))
            if self.ws is not None and not self.ws.closed:
                await self.ws.close()
            await self.on_closed(reason)

    async def _request(self, frame: dict) -> asyncio.Future:
        """Send one frame; the returned future resolves with the ids of its answer (in order)."""
        if self.ws is None or self.ws.closed or self.closed_reason:
            raise GatewayClosed(self.closed_reason or "not connected")
        future = asyncio.get_running_loop().create_future()
        await self._pending.put(future)
        await self.ws.send_json(frame)
        return future

    async def send(self, messages: list[dict]) -> asyncio.Future:
        """Queue one batch; the returned future resolves with the acked ids."""
        return await self._request({"type": "send", "messages": messages})

    async def already_delivered(self, ids: list[str]) -> set[str]:
        """Which of `ids` the gateway has delivered (asked on this, the live, connection)."""
        return set(await (await self._request({"type": "query", "ids": ids})))

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
