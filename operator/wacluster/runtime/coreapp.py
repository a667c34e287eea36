"""`wacluster coreapp`: a standby until promoted; then it owns one shard's gateway connection.

One loop decides, once per wake-up, what this coreapp should be doing (stand by, take a shard,
keep it, give it up) and says so in one log line when that changes. A watchdog stops serving the
moment the shard lease runs out (see `domain/fencing.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

import aiohttp
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from wacluster.api.interprocess import Role
from wacluster.db import account as account_db
from wacluster.db import messages as messages_db
from wacluster.db import nodes as nodes_db
from wacluster.db import schema
from wacluster.db import settings as settings_db
from wacluster.db import shard_map
from wacluster.db import webhooks as webhooks_db
from wacluster.db.connection import conninfo_from_env, open_pool
from wacluster.db.listener import Listener
from wacluster.domain.fencing import ShardLease
from wacluster.domain.ha import lease_ttl
from wacluster.runtime import metrics
from wacluster.runtime.gateway_link import GatewayClosed, GatewayLink
from wacluster.runtime.node import NodeIdentity, gateway_url, identity
from wacluster.runtime.service import add_role_parser, configure_logging, first_of, metrics_app, run_apps, run_loop

log = logging.getLogger("wacluster.coreapp")

SEND_BATCH = 200
HANDOFF_DEADLINE = 10.0


class Coreapp:
    def __init__(self, me: NodeIdentity, pool: AsyncConnectionPool, gateway_url: str) -> None:
        self.me = me
        self.pool = pool
        self.gateway_url = gateway_url
        self.settings: dict[str, Any] = dict(settings_db.DEFAULTS)
        self.lease: ShardLease | None = None
        self.link: GatewayLink | None = None
        self.serving = False
        self.stopping = False
        self.outbox: asyncio.Queue[dict] = asyncio.Queue()
        self.session: aiohttp.ClientSession | None = None
        self.wake = asyncio.Event()
        self.last_sentence = ""
        self.db_ok = False
        # (shard, epoch) pairs the gateway replaced: reconnecting with one would be a conflict.
        self.given_up: set[tuple[int, int]] = set()
        self.accepting = True
        self.in_flight: set[asyncio.Task] = set()
        self.unsettled = 0  # accepted or queued messages not yet recorded as delivered (or dropped)
        # Ids this coreapp already has in hand: a message can arrive both from the backlog and
        # from a webapp retry; it is sent once.
        self.known_ids: OrderedDict[str, None] = OrderedDict()
        self.renew_now = asyncio.Event()

    # --- the decision loop -----------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self.session = aiohttp.ClientSession()
        async with self.pool.connection() as conn:
            await schema.check(conn)
            await nodes_db.register(conn, self.me.name, Role.COREAPP, self.me.node_id, self.me.address, self.me.version)
            self.settings = await settings_db.read_all(conn)
        self.db_ok = True
        log.info("%s started as a standby coreapp (control %s)", self.me.display, self.me.address)
        listener = Listener(self.pool, lambda payload: self.wake.set())
        tasks = [asyncio.create_task(c, name=n) for n, c in [
            ("listener", listener.run()), ("db-heartbeat", self._db_heartbeat_loop()),
            ("lease", self._lease_loop()), ("watchdog", self._watchdog()), ("sender", self._sender())]]
        try:
            while not stop.is_set():
                try:
                    await self._cycle()
                except Exception as exc:  # the database may be briefly away; the watchdog guards safety
                    self.db_ok = False
                    self._say(f"cannot read the shard map ({exc}); retrying")
                self.wake.clear()
                interval = min(float(self.settings["heartbeat_interval"]), 1.0)
                try:
                    await asyncio.wait_for(first_of(stop.wait(), self.wake.wait()), timeout=interval)
                except asyncio.TimeoutError:
                    pass
            await self._planned_handoff()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await listener.close()
            if self.link:
                await self.link.close()
            await self.session.close()

    async def _cycle(self) -> None:
        async with self.pool.connection() as conn:
            self.settings = await settings_db.read_all(conn)
            phone = await account_db.registered_phone(conn)
            row = await (await conn.execute(
                "SELECT shard, epoch, revoked FROM shard_map WHERE coreapp = %s ORDER BY epoch DESC LIMIT 1",
                (self.me.name,))).fetchone()
        self.db_ok = True
        if self.stopping:
            return
        if self.serving and self.lease:
            wanted_ttl = self._wanted_ttl()
            if wanted_ttl != self.lease.ttl:
                self.renew_now.set()  # new intervals: renew at once with the new lease length
            if row is None or (row[0], row[1]) != (self.lease.shard, self.lease.epoch) or row[2]:
                await self.fence("the shard map no longer gives it this shard")
            return
        if row is None or row[2] or phone is None or (row[0], row[1]) in self.given_up:
            self._say("standing by" if phone else "waiting for the account to be registered")
            return
        await self._take_shard(row[0], row[1], phone)

    async def _take_shard(self, shard: int, epoch: int, phone: str) -> None:
        ttl = self._wanted_ttl()
        lease = ShardLease(shard, epoch, ttl)
        sent = time.monotonic()
        async with self.pool.connection() as conn:
            if not await shard_map.renew_lease(conn, shard, epoch, self.me.name, ttl):
                self._say(f"promotion to shard {shard} (epoch {epoch}) was withdrawn before it started")
                return
        lease.confirmed(sent)
        link = GatewayLink(self.session, self.gateway_url, phone, shard, self.me.name, epoch,
                           on_closed=self._gateway_closed, on_status=self._statuses)
        try:
            await link.open()
        except (GatewayClosed, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self._say(f"could not connect shard {shard} to the gateway: {exc}")
            return
        try:
            backlog, sent_before = await self._reconcile_backlog(link, shard, epoch)
        except (GatewayClosed, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            await link.close()
            self._say(f"could not check shard {shard}'s backlog with the gateway: {exc}")
            return
        if not lease.valid(time.monotonic()):
            await link.close()
            self._say(f"took too long to connect shard {shard}; giving it back")
            return
        self.lease, self.link, self.serving = lease, link, True
        metrics.COREAPP_SERVING.set(1)
        metrics.SHARD_EPOCH.labels(shard=str(shard)).set(epoch)
        async with self.pool.connection() as conn:
            await nodes_db.set_state(conn, self.me.name, gateway_status="connected")
        for message_id in sent_before:  # a webapp retry of one of these is not sent again either
            self._remember(message_id)
        self._enqueue([{"id": m.id, "to": m.recipient, "body": m.body} for m in backlog])
        self._say(f"serving shard {shard} (epoch {epoch}); {len(backlog)} queued message(s) to send, "
                  f"{len(sent_before)} already sent by the previous owner")

    async def _reconcile_backlog(self, link: GatewayLink, shard: int, epoch: int):
        """The shard's queued messages minus those the gateway already has.

        A predecessor killed between the gateway's ack and recording the delivery leaves sent
        messages queued; asking the gateway on our live connection (after which the predecessor
        can send nothing) tells them apart, so they are recorded instead of sent twice.
        """
        async with self.pool.connection() as conn:
            backlog = await messages_db.queued(conn, shard, limit=10_000)
        if not backlog:
            return [], []
        known = await asyncio.wait_for(link.already_delivered([m.id for m in backlog]), timeout=5)
        sent_before = [m.id for m in backlog if m.id in known]
        if sent_before:
            async with self.pool.connection() as conn:
                await messages_db.mark_delivered(conn, sent_before, self.me.name, epoch)
        return [m for m in backlog if m.id not in known], sent_before

    def _wanted_ttl(self) -> float:
        """The shard lease for the current interval settings (they apply live)."""
        return lease_ttl(float(self.settings["heartbeat_interval"]), float(self.settings["unhealthy_interval"]))

    # --- safety --------------------------------------------------------------------------------

    async def fence(self, reason: str) -> None:
        """Stop serving now: drop the gateway connection and refuse requests."""
        if not self.serving:
            return
        self.serving = False
        metrics.COREAPP_SERVING.set(0)
        lease, link = self.lease, self.link
        self.link = None
        if link is not None:
            await link.close()
        # Whatever was in hand stays queued in the database for the next owner (maybe us again).
        while not self.outbox.empty():
            self.outbox.get_nowait()
            self.unsettled -= 1
        self.known_ids.clear()
        self._say(f"stopped serving shard {lease.shard if lease else '?'} because {reason}")
        try:
            async with self.pool.connection() as conn:
                await nodes_db.set_state(conn, self.me.name, gateway_status="disconnected")
        except Exception as exc:
            log.warning("could not record the disconnection: %s", exc)

    async def _gateway_closed(self, reason: str) -> None:
        lease = self.lease
        if lease and ("replaced" in reason or "banned" in reason):
            self.given_up.add((lease.shard, lease.epoch))
        await self.fence(reason)

    async def _statuses(self, statuses: list[dict]) -> None:
        """Delivery statuses become webhook events (durable; any webapp posts them)."""
        if not self.settings.get("webhook_url") or not statuses:
            return
        lease = self.lease
        try:
            async with self.pool.connection() as conn:
                await webhooks_db.enqueue(conn, [{"statuses": [
                    {**s, "timestamp": str(int(time.time())), "shard": lease.shard if lease else None}
                    for s in statuses]}])
        except Exception as exc:
            log.warning("could not queue %d status webhook(s): %s", len(statuses), exc)

    async def _watchdog(self) -> None:
        while True:
            lease = self.lease
            if self.serving and lease and not lease.valid(time.monotonic()):
                await self.fence("its shard lease ran out before it could be renewed")
            await asyncio.sleep(0.05)

    async def _lease_loop(self) -> None:
        while True:
            lease = self.lease
            if not (self.serving and lease):
                await asyncio.sleep(0.05)
                continue
            # Interval settings apply live: the next renewal already uses the new lease length.
            lease.ttl = self._wanted_ttl()
            sent = time.monotonic()
            try:
                async with self.pool.connection(timeout=lease.remaining(sent) or 0.1) as conn:
                    still_ours = await shard_map.renew_lease(conn, lease.shard, lease.epoch, self.me.name, lease.ttl)
            except Exception as exc:
                log.warning("lease renewal failed: %s", exc)
                still_ours = None
            if still_ours is False:
                await self.fence("the master revoked its shard")
            elif still_ours:
                lease.confirmed(sent)
            self.renew_now.clear()
            try:
                await asyncio.wait_for(self.renew_now.wait(), timeout=lease.renew_every)
            except asyncio.TimeoutError:
                pass

    async def _db_heartbeat_loop(self) -> None:
        last = 0.0
        while True:
            # Wake often so a shorter interval set at run time applies at once.
            if time.monotonic() - last >= float(self.settings["db_heartbeat_interval"]):
                last = time.monotonic()
                try:
                    async with self.pool.connection() as conn:
                        await nodes_db.heartbeat(conn, self.me.name)
                except Exception as exc:
                    log.warning("database heartbeat failed: %s", exc)
            await asyncio.sleep(0.25)

    # --- sending -------------------------------------------------------------------------------

    async def _sender(self) -> None:
        while True:
            batch = [await self.outbox.get()]
            while len(batch) < SEND_BATCH and not self.outbox.empty():
                batch.append(self.outbox.get_nowait())
            link, lease = self.link, self.lease
            if not (self.serving and link and lease and lease.valid(time.monotonic())):
                self.unsettled -= len(batch)
                continue  # not ours to send: they stay queued in the database for the owner
            try:
                ack = await link.send(batch)
            except GatewayClosed:
                self.unsettled -= len(batch)
                continue
            task = asyncio.create_task(self._record_delivery(ack, lease.epoch, len(batch)))
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)

    async def _record_delivery(self, ack: asyncio.Future, epoch: int, count: int) -> None:
        try:
            ids = await asyncio.wait_for(ack, timeout=30)
            async with self.pool.connection() as conn:
                await messages_db.mark_delivered(conn, ids, self.me.name, epoch)
            metrics.MESSAGES_SENT.inc(len(ids))
        except (GatewayClosed, asyncio.TimeoutError):
            pass  # still queued in the database; the owner sends it again and the gateway dedupes
        finally:
            self.unsettled -= count

    def accept(self, messages: list[dict], shard: int) -> bool:
        lease = self.lease
        if not (self.accepting and self.serving and lease and lease.shard == shard
                and lease.valid(time.monotonic())):
            return False
        self._enqueue(messages)
        return True

    def _enqueue(self, messages: list[dict]) -> None:
        for message in messages:
            if message["id"] in self.known_ids:
                continue
            self._remember(message["id"])
            self.outbox.put_nowait(message)
            self.unsettled += 1

    def _remember(self, message_id: str) -> None:
        self.known_ids[message_id] = None
        if len(self.known_ids) > 200_000:
            self.known_ids.popitem(last=False)

    # --- planned handoff -------------------------------------------------------------------------

    async def _planned_handoff(self) -> None:
        self.stopping = True
        lease = self.lease if self.serving else None
        try:
            async with self.pool.connection() as conn:
                await nodes_db.set_state(conn, self.me.name, stopping=True)
        except Exception as exc:
            log.warning("could not mark this coreapp as stopping: %s", exc)
        if lease is None:
            log.info("%s stopping; it served no shard", self.me.display)
            await self._deregister()
            return
        # Drain: take nothing new, let what was accepted reach the gateway and be recorded, so the
        # successor has nothing to resend.
        self.accepting = False
        drain_until = time.monotonic() + 2.0
        while time.monotonic() < drain_until and self.unsettled > 0:
            await asyncio.sleep(0.005)
        await self.fence("it is shutting down (planned handoff)")
        async with self.pool.connection() as conn:
            await shard_map.release(conn, lease.shard, lease.epoch, self.me.name, "planned handoff")
            standbys = (await (await conn.execute(
                "SELECT count(*) FROM nodes WHERE role = 'coreapp' AND name <> %s AND NOT stopping "
                "AND db_heartbeat_at > now() - make_interval(secs => %s)",
                (self.me.name, float(self.settings["db_unhealthy_after"])))).fetchone())[0]
        if standbys == 0:
            log.warning("no standby coreapp to hand shard %d to; it stays unassigned", lease.shard)
            await self._deregister()
            return
        started = time.monotonic()
        while time.monotonic() - started < HANDOFF_DEADLINE:
            async with self.pool.connection() as conn:
                row = await (await conn.execute(
                    "SELECT s.coreapp, s.epoch, n.gateway_status FROM shard_map s "
                    "LEFT JOIN nodes n ON n.name = s.coreapp WHERE s.shard = %s", (lease.shard,))).fetchone()
            if row and row[1] > lease.epoch and row[2] == "connected":
                log.info("handed shard %d to %s (epoch %d) in %.3fs", lease.shard, row[0], row[1],
                         time.monotonic() - started)
                break
            await asyncio.sleep(0.02)
        else:
            log.warning("no successor connected shard %d within %.0fs; exiting anyway", lease.shard, HANDOFF_DEADLINE)
        await self._deregister()

    async def _deregister(self) -> None:
        try:
            async with self.pool.connection() as conn:
                await nodes_db.remove(conn, self.me.name)
        except Exception as exc:
            log.warning("could not remove the node record: %s", exc)

    def _say(self, sentence: str) -> None:
        if sentence != self.last_sentence:
            log.info("%s: %s", self.me.name, sentence)
            self.last_sentence = sentence

    # --- control endpoint ------------------------------------------------------------------------

    def control_app(self) -> web.Application:
        async def heartbeat(_: web.Request) -> web.Response:
            lease = self.lease if self.serving else None
            return web.json_response({"name": self.me.name, "node_id": self.me.node_id,
                                      "serving": bool(lease), "shard": lease.shard if lease else None,
                                      "epoch": lease.epoch if lease else None, "stopping": self.stopping})

        async def accept_messages(request: web.Request) -> web.Response:
            body = await request.json()
            shard = int(body["shard"])
            if not self.accept(body["messages"], shard):
                lease = self.lease if self.serving else None
                return web.json_response({"error": "not the owner of this shard",
                                          "serving": lease.shard if lease else None}, status=409)
            return web.json_response({"accepted": [m["id"] for m in body["messages"]]}, status=202)

        app = web.Application()
        app.router.add_get("/heartbeat", heartbeat)
        app.router.add_post("/messages", accept_messages)
        return app

    def ready(self) -> bool | str:
        # Ready means "reachable and able to take a shard", not "primary".
        if not self.db_ok:
            return "database unreachable"
        return True




def add_parser(subparsers) -> None:
    add_role_parser(subparsers, Role.COREAPP, "run a coreapp (standby until promoted for a shard)", run)


def run(args: argparse.Namespace) -> int:
    configure_logging()

    async def main() -> None:
        pool = await open_pool(conninfo_from_env(), max_size=6)
        coreapp = Coreapp(identity(args.port), pool, gateway_url())
        apps = [(coreapp.control_app(), args.host, args.port)]
        if args.metrics_port:
            apps.append((metrics_app(coreapp.ready), args.host, args.metrics_port))
        try:
            await run_apps(apps, coreapp.run)
        finally:
            await pool.close()

    run_loop(main())
    return 0
