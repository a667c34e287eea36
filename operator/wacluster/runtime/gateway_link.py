"""A coreapp's one connection to the WhatsApp gateway for the shard it owns.

Requests (`send`, `query`) carry a `ref` the gateway echoes in its answer (`ack`, `known`), so an
answer finds its request even when another was lost; a gateway that echoes nothing is answered
in request order. Every way the connection can fail ends the same way: pending requests fail with
`GatewayClosed` and `on_closed(reason)` is called once (unless the coreapp closed it itself), so
nothing waits forever and nothing dies silently.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import OrderedDict
from typing import Awaitable, Callable

import aiohttp

log = logging.getLogger("wacluster.coreapp")

# What a write on a connection that just broke raises (aiohttp's ClientConnectionResetError is
# both a ClientError and a ConnectionResetError).
_TRANSPORT_ERRORS = (aiohttp.ClientError, ConnectionError, OSError, RuntimeError)


class GatewayClosed(Exception):
    """The gateway replaced or banned us, or the connection dropped."""


class GatewayLink:
    """Sends message batches and resolves them on the gateway's ack (a `runtime.gateway.Gateway`)."""

    settles_itself = False  # a batch without an ack in time is lost and asked about again
    paused_reason = None    # the sandbox never pauses an account

    def __init__(self, session: aiohttp.ClientSession, url: str, account: str, shard: int, node: str,
                 epoch: int, on_closed: Callable[[str], Awaitable[None]],
                 on_status: Callable[[list[dict]], Awaitable[None]] | None = None,
                 on_inbound: Callable[[dict], Awaitable[bool]] | None = None) -> None:
        self.session = session
        self.url = url.rstrip("/") + "/connect"
        self.params = {"account": account, "shard": str(shard), "node": node, "epoch": str(epoch)}
        self.on_closed = on_closed
        self.on_status = on_status
        # An inbound frame's payload (an on-premises webhook body); True once it is durable, and
        # only then is the frame acknowledged (the gateway sends it again otherwise).
        self.on_inbound = on_inbound
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: OrderedDict[int, asyncio.Future] = OrderedDict()
        self._refs = itertools.count(1)
        self._reader: asyncio.Task | None = None
        self._closing = False  # closed by the coreapp: no on_closed callback
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
                if kind in ("ack", "known"):
                    future = self._answered(data.get("ref"))
                    if future is not None and not future.done():
                        future.set_result(data.get("ids", []))
                elif kind == "status" and self.on_status is not None:
                    await self.on_status(data.get("statuses", []))
                elif kind == "inbound" and self.on_inbound is not None:
                    if await self.on_inbound(data.get("payload") or {}):
                        await self.ws.send_json({"type": "inbound_ack", "ref": data.get("ref")})
                elif kind in ("replaced", "banned", "error"):
                    reason = f"gateway said {kind}: {data}"
                    break
            else:
                error = self.ws.exception()
                if error is not None:
                    reason = f"gateway connection failed: {error!r}"
        except asyncio.CancelledError:
            reason = self.closed_reason or "closed by the coreapp"
            raise
        except Exception as exc:  # a malformed frame included: the connection cannot be trusted
            reason = f"gateway connection failed: {exc!r}"
        finally:
            self._fail_pending(self.closed_reason or reason)
            self.closed_reason = self.closed_reason or reason
            if self.ws is not None and not self.ws.closed:
                try:
                    await self.ws.close()
                except _TRANSPORT_ERRORS:
                    pass
            if not self._closing:
                await self.on_closed(self.closed_reason)

    def _answered(self, ref) -> asyncio.Future | None:
        if ref is not None:
            return self._pending.pop(ref, None)
        return self._pending.popitem(last=False)[1] if self._pending else None

    def _fail_pending(self, reason: str) -> None:
        while self._pending:
            _, future = self._pending.popitem(last=False)
            if not future.done():
                future.set_exception(GatewayClosed(reason))

    async def _request(self, frame: dict) -> asyncio.Future:
        """Send one frame; the returned future resolves with the ids of its answer."""
        if self.ws is None or self.ws.closed or self.closed_reason:
            raise GatewayClosed(self.closed_reason or "not connected")
        ref = next(self._refs)
        future = asyncio.get_running_loop().create_future()
        self._pending[ref] = future
        try:
            await self.ws.send_json({**frame, "ref": ref})
        except _TRANSPORT_ERRORS as exc:
            self._pending.pop(ref, None)
            self.closed_reason = self.closed_reason or f"gateway connection failed while sending: {exc!r}"
            self._fail_pending(self.closed_reason)
            raise GatewayClosed(self.closed_reason) from exc
        return future

    async def send(self, messages: list[dict]) -> asyncio.Future:
        """Send one batch; the returned future resolves with the acked ids."""
        return await self._request({"type": "send", "messages": messages})

    async def already_delivered(self, ids: list[str]) -> set[str]:
        """Which of `ids` the gateway has delivered (asked on this, the live, connection)."""
        return set(await (await self._request({"type": "query", "ids": ids})))

    def stop_starting(self) -> None:
        """Nothing to do: a batch written to the socket is on its way, and the outbox holds the rest."""

    def abandon(self, future: asyncio.Future) -> None:
        """The caller stopped waiting for this answer: forget it (a late answer is ignored)."""
        for ref, pending in list(self._pending.items()):
            if pending is future:
                del self._pending[ref]
        future.cancel()

    async def close(self) -> None:
        """Close it ourselves (no on_closed callback); pending requests fail."""
        self._closing = True
        self.closed_reason = self.closed_reason or "closed by the coreapp"
        reader = self._reader
        if reader is not None and not reader.done() and reader is not asyncio.current_task():
            reader.cancel()  # (when the reader itself reports the close, it is already ending)
            await asyncio.gather(reader, return_exceptions=True)
        self._fail_pending(self.closed_reason)
        if self.ws is not None and not self.ws.closed:
            try:
                await self.ws.close()
            except _TRANSPORT_ERRORS:
                pass
