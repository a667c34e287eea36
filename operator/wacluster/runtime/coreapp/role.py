"""The coreapp role: its state (one `Lifecycle`, see `domain/coreapp_state.py`), its parts, the
supervised tasks they run, and the decision loop.

The decision loop decides, once per wake-up, what this coreapp should be doing (stand by, take a
shard, keep it, give it up) and says so in one log line when that changes. The other long-lived
tasks (listener, database heartbeat, lease renewal, watchdog, sender, ack recorder, backlog scan)
run beside it under one supervisor: a failed task is logged and restarted, or, for the watchdog
and the decision loop, brings the coreapp down, fenced and its shard released, so the shard fails
over instead of being held by a coreapp that can no longer serve it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from psycopg_pool import AsyncConnectionPool

from wacluster.api.interprocess import MEDIA_DIR, Role
from wacluster.db import account as account_db
from wacluster.db import nodes as nodes_db
from wacluster.db import schema
from wacluster.db import settings as settings_db
from wacluster.db import shard_map
from wacluster.db.listener import Listener
from wacluster.db.messages import Claimer
from wacluster.domain.coreapp_state import CoreappState as S
from wacluster.domain.clock_rate import ClockRate
from wacluster.domain.coreapp_state import Lifecycle
from wacluster.domain.ha import lease_ttl
from wacluster.domain.pacing import shard_rate
from wacluster.runtime.coreapp import clock
from wacluster.runtime.coreapp.backlog import Backlog
from wacluster.runtime.coreapp.cloud_gateway import CloudGateway
from wacluster.runtime.coreapp.cloud_ledger import CloudLedger
from wacluster.runtime.coreapp.cloud_media import CloudMedia
from wacluster.runtime.coreapp.handoff import planned_handoff
from wacluster.runtime.coreapp.ownership import Ownership, Session
from wacluster.runtime.coreapp.sender import Sender
from wacluster.runtime.coreapp.statuses import Statuses
from wacluster.runtime.gateway import CloudSettings, Gateway, sent_tracing
from wacluster.runtime.gateway_link import GatewayLink
from wacluster.runtime.supervision import Policy, RoleFailed, Supervisor
from wacluster.runtime.node import NodeIdentity
from wacluster.runtime.service import first_of

log = logging.getLogger("wacluster.coreapp")

FAILING_DEADLINE = 5.0  # seconds a failing coreapp spends on releasing its shard before it exits


@dataclass(frozen=True)
class CoreappConfig:
    """Tunables of one coreapp process (command-line options of `wacluster coreapp`)."""

    ack_timeout: float = 30.0          # a batch not acknowledged within this is lost (re-examined)
    outbox_capacity: int = 10_000      # messages in hand at most; beyond, hand-offs get a 503
    backlog_page: int = 1000           # rows per page of the backlog scan
    backlog_interval: float = 5.0      # seconds between backlog scans (also woken on losses)
    # Cloud API only: how long after its start a send with no known outcome is waited for (a
    # status webhook may resolve it) before the next session sends it again.
    cloud_in_doubt_window: float = 30.0
    cloud_pause_check_interval: float = 30.0  # seconds between credential checks while paused
    media_dir: str = MEDIA_DIR  # the shared media volume: media sent by id is uploaded from it

    @property
    def stale_claim_after(self) -> float:
        """A claim of the session itself older than this, and not in hand, was lost track of."""
        return 2 * self.ack_timeout


class Coreapp:
    def __init__(self, me: NodeIdentity, pool: AsyncConnectionPool, gateway_url: str,
                 config: CoreappConfig | None = None, cloud: CloudSettings | None = None) -> None:
        self.me = me
        self.pool = pool
        self.gateway_url = gateway_url
        self.cloud = cloud  # None: the sandbox protocol at gateway_url
        self.config = config or CoreappConfig()
        self.log = log
        self.settings: dict[str, Any] = dict(settings_db.DEFAULTS)
        self.lifecycle = Lifecycle()
        self.session: Session | None = None  # set exactly while the lifecycle holds the shard
        self.db_ok = False
        self.http: aiohttp.ClientSession | None = None
        self.wake = asyncio.Event()
        self.handing_off: asyncio.Task | None = None  # a maintenance handoff the master asked for (handoff.py)
        self.last_sentence = ""
        self.ownership = Ownership(self)
        self.sender = Sender(self)
        self.backlog = Backlog(self)
        self.statuses = Statuses(self)
        self.clock = ClockRate()  # the database's clock against ours (runtime/coreapp/clock.py)

    # --- running -----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`, then a planned handoff. Raises RoleFailed when a supervised task failed
        for good (after fencing and releasing the shard)."""
        self.http = aiohttp.ClientSession(trace_configs=[sent_tracing()])  # the Cloud pacer counts sends as they leave
        listener = Listener(self.pool, lambda payload: self.wake.set())
        try:
            async with self.pool.connection() as conn:
                await schema.check(conn)
                await nodes_db.register(conn, self.me.name, Role.COREAPP, self.me.node_id, self.me.address,
                                        self.me.version)
                self.settings = await settings_db.read_all(conn)
            self.db_ok = True
            self.lifecycle.move(S.STANDBY, "started")
            log.info("%s started as a standby coreapp (control %s)", self.me.display, self.me.address)
            supervisor = Supervisor(log)
            supervisor.add("listener", listener.run, Policy.RESTART)
            supervisor.add("db-heartbeat", self._db_heartbeat_loop, Policy.RESTART)
            supervisor.add("lease", self.ownership.renew_loop, Policy.RESTART)
            supervisor.add("watchdog", self.ownership.watchdog, Policy.FATAL)
            supervisor.add("sender", self.sender.run, Policy.RESTART, self.sender.sender_failed)
            supervisor.add("acks", self.sender.record_acks, Policy.RESTART, self.sender.acks_failed)
            supervisor.add("backlog", self.backlog.run, Policy.RESTART)
            supervisor.add("clock", lambda: clock.measure(self.pool, self.clock), Policy.RESTART)
            try:
                await supervisor.run(lambda: self._decide_until(stop), name="the decision loop")
            except RoleFailed as failure:
                await self._fail(str(failure))
                raise
        finally:
            await listener.close()
            if self.session is not None:
                await self.session.link.close()
            await self.http.close()

    async def _decide_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._cycle()
            except (psycopg.Error, OSError, TimeoutError) as exc:  # the database may be briefly away;
                self.db_ok = False                                  # the watchdog guards safety
                self.say(f"cannot read the shard map ({exc}); retrying")
            self.wake.clear()
            interval = min(float(self.settings["heartbeat_interval"]), 1.0)
            try:
                await asyncio.wait_for(first_of(stop.wait(), self.wake.wait()), timeout=interval)
            except asyncio.TimeoutError:
                pass
        await planned_handoff(self)

    async def _cycle(self) -> None:
        """Read the world once, decide once."""
        async with self.pool.connection() as conn:
            self.settings = await settings_db.read_all(conn)
            phone = await account_db.registered_phone(conn)
            row = await shard_map.assignment(conn, self.me.name)
        self.db_ok = True
        state = self.lifecycle.state
        if state is S.SERVING:
            session = self.session
            if self.wanted_ttl() != session.lease.ttl:
                self.ownership.renew_now.set()  # new intervals: renew at once with the new lease length
            if row is None or (row[0], row[1]) != (session.shard, session.epoch) or row[2]:
                await self.ownership.fence("the shard map no longer gives it this shard")
            return
        if state is not S.STANDBY:
            return
        if row is None or row[2] or phone is None or (row[0], row[1]) in self.ownership.given_up:
            self.say("standing by" if phone else "waiting for the account to be registered")
            return
        await self.ownership.take(row[0], row[1], phone)

    async def _db_heartbeat_loop(self) -> None:
        last = 0.0
        loop = asyncio.get_running_loop()
        while True:
            # Wake often so a shorter interval set at run time applies at once.
            if loop.time() - last >= float(self.settings["db_heartbeat_interval"]):
                last = loop.time()
                try:
                    async with self.pool.connection() as conn:
                        await nodes_db.heartbeat(conn, self.me.name)
                except Exception as exc:
                    log.warning("database heartbeat failed: %s", exc)
            await asyncio.sleep(0.25)

    async def _fail(self, reason: str) -> None:
        """A supervised task failed for good: stop serving, hand the shard to the master at once
        (release, not a wait for the lease to run out), deregister; the process then exits non-zero."""
        session = self.session
        log.error("%s: %s; fencing itself, releasing its shard and exiting so the shard fails over",
                  self.me.name, reason,
                  extra={"shard": session.shard, "epoch": session.epoch} if session is not None else None)
        await self.ownership.fence(f"the coreapp is failing ({reason})")
        try:
            async with asyncio.timeout(FAILING_DEADLINE):
                if session is not None:
                    await self.ownership.release(session, f"coreapp failed: {reason}")
                async with self.pool.connection() as conn:
                    await nodes_db.remove(conn, self.me.name)
        except Exception as exc:
            log.warning("could not release its shard or deregister (%s); the lease runs out instead", exc)
        if self.lifecycle.state in (S.STANDBY, S.HANDING_OFF):
            self.lifecycle.move(S.STOPPED, reason)

    # --- shared by the parts ---------------------------------------------------------------------------

    def gateway_for(self, shard: int, epoch: int, phone: str, session_id: str,
                    on_closed) -> Gateway:
        """The driver of a new session: the sandbox's websocket, or the Cloud API."""
        if self.cloud is None:
            return GatewayLink(self.http, self.gateway_url, phone, shard, self.me.name, epoch,
                               on_closed=on_closed, on_status=self.statuses.record,
                               on_inbound=self.statuses.record_inbound)
        link: CloudGateway | None = None

        def may_send() -> bool:
            session = self.session
            return (session is not None and session.link is link and self.lifecycle.sends
                    and session.lease.valid(time.monotonic()))

        async def on_paused(reason: str | None) -> None:
            session = self.session
            if session is not None and session.link is link:
                try:
                    await self.record_gateway_status(link)
                except Exception as exc:  # the next change or takeover records it
                    log.warning("could not record the gateway status: %s", exc)

        link = CloudGateway(self.http, self.cloud, CloudLedger(self, Claimer(self.me.name, shard, epoch, session_id)),
                            rate=shard_rate(self.cloud.messages_per_second, int(self.settings["shards"])),
                            in_doubt_window=self.config.cloud_in_doubt_window,
                            pause_check_every=self.config.cloud_pause_check_interval,
                            may_send=may_send, on_paused=on_paused, on_closed=on_closed,
                            media=CloudMedia(self.http, self.cloud, self.pool, Path(self.config.media_dir),
                                             self.me.name))
        return link

    async def record_gateway_status(self, link: Gateway) -> None:
        """`connected`, or `paused` with the reason (the Cloud API refuses the account), for
        /v1/health."""
        paused = link.paused_reason
        async with self.pool.connection() as conn:
            await nodes_db.set_state(conn, self.me.name, gateway_status="paused" if paused else "connected",
                                     error=f"sending paused: {paused}" if paused else None)

    def wanted_ttl(self) -> float:
        """The shard lease for the current interval settings (they apply live)."""
        return lease_ttl(float(self.settings["heartbeat_interval"]), float(self.settings["unhealthy_interval"]))

    def say(self, sentence: str, always: bool = False, shard: int | None = None, epoch: int | None = None) -> None:
        """Log what it is doing, once per change; the shard it serves (or names) rides along in JSON logs."""
        if always or sentence != self.last_sentence:
            if shard is None and self.session is not None:
                shard, epoch = self.session.shard, self.session.epoch
            log.info("%s: %s", self.me.name, sentence, extra={"shard": shard, "epoch": epoch})
            self.last_sentence = sentence

    def ready(self) -> bool | str:
        # Ready means "reachable and able to take a shard", not "primary".
        if not self.db_ok:
            return "database unreachable"
        return True
