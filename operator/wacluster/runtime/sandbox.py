"""`wacluster sandbox`: the simulated WhatsApp server.

It polices what the real service polices: one live connection per (account, shard). A new
connection replaces the old one, which is told so. A replaced client that comes back and
replaces the newer one is a *conflict*; more than `ban_threshold` conflicts within
`ban_window` seconds ban the account for `ban_cooldown` seconds. Deliveries are recorded by
message id (a repeated id is acknowledged but not delivered twice) with shard, epoch and node.
Every send of an id that reaches the server is counted (`send_attempts`), and every send of an
id already delivered is a *duplicate*, whatever the server then does with it (acknowledges it
without delivering, refuses it on a replaced connection, loses it to an injected fault): the
Cloud API has no id check, so there the recipient would have seen it twice.
A live connection may ask which of a list of ids were already delivered (`query` → `known`),
so a client that takes over a shard resends only what its predecessor did not send. An answer
(`ack`, `known`) echoes the `ref` of its request when the request carried one.
Deliveries keep each message's type and body, whatever the type. POST /v1/contacts answers which
numbers are on WhatsApp (all but those ending in 0000, `has_whatsapp`).
Everything is deterministic and inspectable at GET /inspect. POST /inbound/{message,status,error}
makes the server send the business an inbound message, a status change or an error
(runtime/sandbox_inbound.py).

Faults for tests (POST /faults), the network failures the real service's clients must survive:
`reset_on_send: n` makes each of the next n send frames deliver the first half of its batch and
then reset the TCP connection (no ack, no close frame); `swallow_sends: n` makes the next n send
frames vanish (nothing delivered, nothing acknowledged), as a frame lost in transit; `ack_delay:
seconds` delivers each batch at once but answers it that much later (a slow ack: the connection's
later frames, and its pings, wait behind it, so a client may give the connection up), until set
back to 0.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from wacluster.api.interprocess import Env, Port, Role
from wacluster.runtime.sandbox_inbound import InboundEvents
from wacluster.runtime.service import configure_logging, metrics_app, run_apps, run_loop

log = logging.getLogger("wacluster.sandbox")


@dataclass
class Connection:
    ws: web.WebSocketResponse
    account: str
    shard: int
    node: str
    epoch: int


@dataclass
class Faults:
    """Injected network faults, consumed one send frame at a time (see the module docstring)."""

    reset_on_send: int = 0
    swallow_sends: int = 0
    ack_delay: float = 0.0
    resets: list[dict[str, Any]] = field(default_factory=list)
    swallowed: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class GatewayState:
    ban_threshold: int = 3
    ban_window: float = 60.0
    ban_cooldown: float = 60.0
    live: dict[tuple[str, int], Connection] = field(default_factory=dict)
    replaced: dict[tuple[str, int], set[tuple[str, int]]] = field(default_factory=dict)
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    send_attempts: dict[str, int] = field(default_factory=dict)
    contact_checks: int = 0  # numbers asked about on /v1/contacts (a cached answer asks nothing)
    stale_sends: list[dict[str, Any]] = field(default_factory=list)
    replacements: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    bans: list[dict[str, Any]] = field(default_factory=list)
    banned_until: dict[str, float] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)

    def is_banned(self, account: str, now: float) -> bool:
        return self.banned_until.get(account, 0) > now

    def summary(self) -> dict[str, Any]:
        return {
            "delivered": len(self.deliveries),
            "duplicates": len(self.duplicates),
            "stale_sends": len(self.stale_sends),
            "replacements": len(self.replacements),
            "conflicts": len(self.conflicts),
            "bans": len(self.bans),
            "resets": len(self.faults.resets),
            "swallowed": len(self.faults.swallowed),
            "contact_checks": self.contact_checks,
            "connections": {f"{a}/{s}": {"node": c.node, "epoch": c.epoch}
                            for (a, s), c in sorted(self.live.items())},
        }


def registration_code(phone: str) -> str:
    """Deterministic six-digit code, as the sandbox's SMS would carry."""
    return str(int(hashlib.sha256(phone.encode()).hexdigest(), 16) % 1_000_000).zfill(6)


class Gateway:
    def __init__(self, state: GatewayState | None = None) -> None:
        self.state = state or GatewayState()
        self.inbound = InboundEvents(self.state.live)  # inbound messages and statuses on request

    async def connect(self, request: web.Request) -> web.WebSocketResponse:
        query = request.query
        try:
            account, shard = query["account"], int(query["shard"])
            node, epoch = query["node"], int(query["epoch"])
        except (KeyError, ValueError):
            raise web.HTTPBadRequest(text="connect needs account, shard, node and epoch")
        ws = web.WebSocketResponse(heartbeat=10)
        await ws.prepare(request)
        now = time.time()
        if self.state.is_banned(account, now):
            await ws.send_json({"type": "banned", "until": self.state.banned_until[account]})
            await ws.close()
            return ws
        await self._admit(Connection(ws, account, shard, node, epoch))
        await ws.send_json({"type": "connected", "shard": shard, "epoch": epoch})
        await self.inbound.resend(account)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                frame = msg.json()
                if frame.get("type") == "inbound_ack":
                    self.inbound.acknowledged(account, frame.get("ref"))
                    continue
                self._count_sends(ws, account, shard, node, epoch, frame)
                fault = self._fault(ws, request.transport, account, shard, node, epoch, frame)
                if fault == "reset":
                    break
                if fault is None:
                    await self._handle(ws, account, shard, node, epoch, frame)
        finally:
            current = self.state.live.get((account, shard))
            if current is not None and current.ws is ws:
                del self.state.live[(account, shard)]
        return ws

    async def _admit(self, incoming: Connection) -> None:
        key = (incoming.account, incoming.shard)
        identity = (incoming.node, incoming.epoch)
        current = self.state.live.get(key)
        now = time.time()
        if current is not None:
            was_replaced = identity in self.state.replaced.get(key, set())
            if was_replaced or incoming.epoch < current.epoch:
                self._conflict(incoming, current, now)
            self.state.replacements.append({"account": incoming.account, "shard": incoming.shard,
                                            "old": {"node": current.node, "epoch": current.epoch},
                                            "new": {"node": incoming.node, "epoch": incoming.epoch},
                                            "at": now})
            self.state.replaced.setdefault(key, set()).add((current.node, current.epoch))
            try:
                await current.ws.send_json({"type": "replaced", "by": {"node": incoming.node, "epoch": incoming.epoch}})
                await current.ws.close()
            except ConnectionError:
                pass
        self.state.live[key] = incoming
        log.info("shard %d of %s connected by %s (epoch %d)", incoming.shard, incoming.account,
                 incoming.node, incoming.epoch)

    def _conflict(self, incoming: Connection, current: Connection, now: float) -> None:
        state = self.state
        state.conflicts.append({"account": incoming.account, "shard": incoming.shard,
                                "stale": {"node": incoming.node, "epoch": incoming.epoch},
                                "current": {"node": current.node, "epoch": current.epoch}, "at": now})
        log.warning("CONFLICT on shard %d: %s (epoch %d) replaced the newer %s (epoch %d)", incoming.shard,
                    incoming.node, incoming.epoch, current.node, current.epoch)
        recent = [c for c in state.conflicts
                  if c["account"] == incoming.account and now - c["at"] <= state.ban_window]
        if len(recent) > state.ban_threshold and not state.is_banned(incoming.account, now):
            state.banned_until[incoming.account] = now + state.ban_cooldown
            state.bans.append({"account": incoming.account, "at": now, "until": now + state.ban_cooldown})
            log.error("account %s BANNED for %.0fs after %d conflicts", incoming.account,
                      state.ban_cooldown, len(recent))

    def _count_sends(self, ws, account: str, shard: int, node: str, epoch: int, message: dict) -> None:
        """Count each id of a send frame as it arrives, before any fault or check: a send of an id
        already delivered is a duplicate even when it is refused or lost here."""
        if message.get("type") != "send":
            return
        current = self.state.live.get((account, shard))
        how = "live" if current is not None and current.ws is ws else "replaced connection"
        now = time.time()
        for item in message.get("messages", []):
            message_id = item.get("id")
            self.state.send_attempts[message_id] = self.state.send_attempts.get(message_id, 0) + 1
            if message_id in self.state.deliveries:
                self.state.duplicates.append({"id": message_id, "to": item.get("to"), "shard": shard, "epoch": epoch,
                                              "node": node, "at": now, "on": how})

    def _fault(self, ws, transport, account: str, shard: int, node: str, epoch: int, message: dict) -> str | None:
        """Apply an armed fault to a send frame on the live connection: "swallowed" (the frame is
        gone), "reset" (the connection is), or None (no fault: handle the frame)."""
        faults = self.state.faults
        current = self.state.live.get((account, shard))
        if message.get("type") != "send" or current is None or current.ws is not ws:
            return None
        ids = [item["id"] for item in message.get("messages", [])]
        if faults.swallow_sends > 0:
            faults.swallow_sends -= 1
            faults.swallowed.append({"ids": ids, "shard": shard, "node": node, "epoch": epoch})
            log.warning("FAULT: swallowed a send of %d message(s) from %s on shard %d", len(ids), node, shard)
            return "swallowed"
        if faults.reset_on_send <= 0:
            return None
        faults.reset_on_send -= 1
        half = message.get("messages", [])[: len(ids) // 2]
        now = time.time()
        for item in half:
            if item["id"] not in self.state.deliveries:
                self.state.deliveries[item["id"]] = {"id": item["id"], "to": item.get("to"), "shard": shard,
                                                     "epoch": epoch, "node": node, "at": now, **_content(item)}
        faults.resets.append({"ids": ids, "delivered": [i["id"] for i in half], "shard": shard, "node": node,
                              "epoch": epoch})
        log.warning("FAULT: delivered %d of %d message(s) from %s on shard %d, then reset the connection",
                    len(half), len(ids), node, shard)
        if transport is not None:
            _reset(transport)
        return "reset"

    async def faults(self, request: web.Request) -> web.Response:
        """Arm faults (test-only): {"reset_on_send": n, "swallow_sends": n, "ack_delay": seconds}."""
        body = await request.json()
        faults = self.state.faults
        faults.reset_on_send = int(body.get("reset_on_send", faults.reset_on_send))
        faults.swallow_sends = int(body.get("swallow_sends", faults.swallow_sends))
        faults.ack_delay = float(body.get("ack_delay", faults.ack_delay))
        return web.json_response({"reset_on_send": faults.reset_on_send, "swallow_sends": faults.swallow_sends,
                                  "ack_delay": faults.ack_delay, "resets": faults.resets,
                                  "swallowed": faults.swallowed})

    async def _handle(self, ws, account: str, shard: int, node: str, epoch: int, message: dict) -> None:
        kind = message.get("type")
        if kind not in ("send", "query"):
            return
        current = self.state.live.get((account, shard))
        if current is None or current.ws is not ws:
            for item in message.get("messages", []):
                self.state.stale_sends.append({"id": item.get("id"), "shard": shard, "node": node, "epoch": epoch,
                                               "at": time.time()})
            await ws.send_json({"type": "error", "error": "replaced"})
            return
        if kind == "query":
            # Answered only on the live connection: once it is admitted, a replaced one can send
            # nothing more, so the answer cannot go stale.
            known = [i for i in message.get("ids", []) if i in self.state.deliveries]
            await ws.send_json({"type": "known", "ids": known, **_ref(message)})
            return
        acked = []
        now = time.time()
        for item in message.get("messages", []):
            if item["id"] not in self.state.deliveries:  # a repeat was counted as a duplicate on arrival
                self.state.deliveries[item["id"]] = {"id": item["id"], "to": item.get("to"), "shard": shard,
                                                     "epoch": epoch, "node": node, "at": now, **_content(item)}
            acked.append(item["id"])
        if self.state.faults.ack_delay > 0:
            await asyncio.sleep(self.state.faults.ack_delay)  # the injected slow ack
        await ws.send_json({"type": "ack", "ids": acked, **_ref(message)})
        await ws.send_json({"type": "status", "statuses": [{"id": i, "status": "delivered"} for i in acked]})

    async def register(self, request: web.Request) -> web.Response:
        body = await request.json()
        phone = str(body.get("phone", ""))
        if not phone.strip("+").isdigit():
            return web.json_response({"error": "phone must be digits with an optional leading +"}, status=400)
        return web.json_response({"phone": phone, "code": registration_code(phone)})

    async def verify(self, request: web.Request) -> web.Response:
        body = await request.json()
        phone, code = str(body.get("phone", "")), str(body.get("code", ""))
        if code != registration_code(phone):
            return web.json_response({"error": "wrong registration code"}, status=400)
        return web.json_response({"phone": phone, "verified": True})

    async def contacts(self, request: web.Request) -> web.Response:
        """Which numbers (digits) are on WhatsApp, by `has_whatsapp`; wa_id is the number."""
        numbers = [str(n) for n in (await request.json()).get("contacts", [])]
        self.state.contact_checks += len(numbers)
        return web.json_response({"contacts": [
            {"number": n, "status": "valid", "wa_id": n} if has_whatsapp(n) else {"number": n, "status": "invalid"}
            for n in numbers]})

    async def inspect(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.summary())

    async def inspect_deliveries(self, request: web.Request) -> web.Response:
        return web.json_response({"deliveries": list(self.state.deliveries.values()),
                                  "duplicates": self.state.duplicates, "stale_sends": self.state.stale_sends,
                                  "send_attempts": self.state.send_attempts,
                                  "conflicts": self.state.conflicts, "bans": self.state.bans,
                                  "replacements": self.state.replacements})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/connect", self.connect)
        app.router.add_post("/v1/register", self.register)
        app.router.add_post("/v1/verify", self.verify)
        app.router.add_post("/v1/contacts", self.contacts)
        app.router.add_get("/inspect", self.inspect)
        app.router.add_get("/inspect/deliveries", self.inspect_deliveries)
        app.router.add_post("/faults", self.faults)
        app.router.add_post("/inbound/{kind}", self.inbound.produce)
        return app


def _content(item: dict) -> dict:
    """What a delivery records of the message itself: its type and body, as the webapp stored
    them (any type: the sandbox checks nothing the webapp did not)."""
    body = item.get("body") if isinstance(item.get("body"), dict) else {}
    return {"type": body.get("type", "text"), "body": body}


def has_whatsapp(number: str) -> bool:
    """The sandbox's contact rule: every number is on WhatsApp except those ending in 0000."""
    return not number.endswith("0000")


def _ref(request: dict) -> dict:
    """The request's correlation reference, echoed in its answer when it carried one."""
    return {"ref": request["ref"]} if "ref" in request else {}


def _reset(transport: asyncio.BaseTransport) -> None:
    """Close with a TCP reset (SO_LINGER 0): the peer sees ECONNRESET, not an orderly close."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(Role.SANDBOX, help="run the simulated WhatsApp server")
    parser.add_argument("--port", type=int, default=Port.GATEWAY)
    parser.add_argument("--host", default=os.environ.get(Env.LISTEN_HOST, "0.0.0.0"))
    parser.add_argument("--metrics-port", type=int, default=Port.METRICS)
    parser.add_argument("--ban-threshold", type=int, default=3)
    parser.add_argument("--ban-window", type=float, default=60.0)
    parser.add_argument("--ban-cooldown", type=float, default=60.0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    configure_logging(Role.SANDBOX)
    gateway = Gateway(GatewayState(args.ban_threshold, args.ban_window, args.ban_cooldown))
    apps = [(gateway.app(), args.host, args.port)]
    if args.metrics_port:
        apps.append((metrics_app(lambda: True), args.host, args.metrics_port))
    run_loop(run_apps(apps))
    return 0
