"""The Master: one HA loop that reads the world once per cycle, decides once (domain/ha.py),
acts, and logs one sentence saying what it did and why."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool

from wacluster.api.interprocess import SWITCHOVER_ANNOTATION, NotifyKind, Role
from wacluster.db import messages as messages_db
from wacluster.db import nodes as nodes_db
from wacluster.db import schema
from wacluster.db import settings as settings_db
from wacluster.db import shard_map
from wacluster.db.listener import Listener
from wacluster.domain.election import Timings
from wacluster.domain.ha import decide
from wacluster.kube.cluster_annotations import ClusterAnnotations
from wacluster.kube.lease import KubeLeaseStore
from wacluster.runtime.master.actions import Actions
from wacluster.runtime.master.heartbeats import Heartbeats
from wacluster.runtime.master.leadership import Leadership
from wacluster.runtime.master.retention import Retention
from wacluster.runtime.master.settings_sync import SettingsFile
from wacluster.runtime.master.status import ShardMapPublisher
from wacluster.runtime.master.world import WorldReader
from wacluster.runtime.node import NodeIdentity
from wacluster.runtime.service import first_of
from wacluster.runtime.supervision import Policy, Supervisor

log = logging.getLogger("wacluster.master")

SENTENCE_REPEAT = 60.0     # repeat an unchanged sentence this often, so the log shows liveness
SELF_CHECK_EVERY = 1.0     # own database heartbeat and schema check: not every decision
RELEASE_DEADLINE = 5.0     # how long a stopping master waits for its Lease release


class Master:
    def __init__(self, me: NodeIdentity, pool: AsyncConnectionPool, lease_store: KubeLeaseStore | None,
                 settings_file: Path | None, pod_api=None, namespace: str = "default", cluster: str = "", *,
                 internal_token: str) -> None:
        self.me = me
        self.pool = pool
        self.lease_store = lease_store
        self.settings: dict[str, Any] = dict(settings_db.DEFAULTS)
        self.schema_error: str | None = None
        self.wake = asyncio.Event()
        self.last_sentence = ("", 0.0)
        self.last_self_check = 0.0
        self.heartbeats = Heartbeats(me.name, pool, lambda: self.settings, internal_token)
        self.leadership = Leadership(me.name, pool, lease_store, self.wake, on_established=self.heartbeats.round)
        self.world = WorldReader(self.heartbeats.unreachable, pod_api, namespace, cluster)
        # Maintenance requests (fence, switchover) on the WhatsAppCluster, in a cluster only.
        self.requests = (ClusterAnnotations(pod_api, namespace, cluster, self._requests_changed)
                         if pod_api is not None and cluster else None)
        self.actions = Actions(me.name, self.heartbeats, self.wake)
        self.settings_file = SettingsFile(settings_file)
        self.status = ShardMapPublisher(lease_store)
        self.retention = Retention(me.name, pool, lambda: self.settings,
                                   lambda: self.leadership.primary and not self.schema_error)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`, then the Lease released. Raises RoleFailed when a supervised task failed
        for good (the election above all: a master that cannot tell whether it leads stops)."""
        await self.heartbeats.open()
        async with self.pool.connection() as conn:
            await nodes_db.register(conn, self.me.name, Role.MASTER, self.me.node_id, self.me.address, self.me.version)
            self.settings = await settings_db.read_all(conn)
        log.info("%s started; campaigning for the master Lease", self.me.display)
        listener = Listener(self.pool, self._notified)
        election_stop = asyncio.Event()
        released = asyncio.Event()
        supervisor = Supervisor(log)
        supervisor.add("listener", listener.run, Policy.RESTART)
        supervisor.add("retention", self.retention.run, Policy.RESTART)
        if self.requests is not None:
            supervisor.add("cluster-annotations", self.requests.run, Policy.RESTART)
        if self.lease_store is not None:
            s = self.settings
            timings = Timings(float(s["lease_duration"]), float(s["renew_deadline"]), float(s["retry_period"]))

            async def elect() -> None:
                await self.leadership.campaign(timings, election_stop)
                released.set()
            # Fatal: the flag `primary` would outlive a dead election; the Lease then expires
            # and another master leads.
            supervisor.add("election", elect, Policy.FATAL, self.leadership.abandon, finished=election_stop)
        else:
            released.set()

        async def decide_until_stopped() -> None:
            await self._decide_until(stop)
            election_stop.set()  # releases the Lease: a watching secondary takes over at once
            try:
                await asyncio.wait_for(released.wait(), timeout=RELEASE_DEADLINE)
            except asyncio.TimeoutError:
                log.warning("the Lease was not released within %.0fs; it expires instead", RELEASE_DEADLINE)
        try:
            await supervisor.run(decide_until_stopped, name="the decision loop")
        finally:
            await listener.close()
            await self.heartbeats.close()
            try:
                async with self.pool.connection() as conn:
                    await nodes_db.remove(conn, self.me.name)
            except Exception as exc:
                log.warning("could not remove the node record: %s", exc)

    async def _decide_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.cycle()
            except Exception as exc:
                self._say(f"cycle failed: {exc}")
            self.wake.clear()
            try:
                await asyncio.wait_for(first_of(stop.wait(), self.wake.wait()), timeout=self._period())
            except asyncio.TimeoutError:
                pass

    def _notified(self, payload: dict) -> None:
        kind = payload.get("kind")
        if kind == NotifyKind.HANDOFF:
            self.heartbeats.soon()
        if kind in (NotifyKind.HANDOFF, NotifyKind.ACCOUNT, NotifyKind.SETTINGS, NotifyKind.LISTENING):
            self.wake.set()

    def _requests_changed(self) -> None:
        self.world.annotations = self.requests.annotations
        self.wake.set()

    def _period(self) -> float:
        # Decide often (cheap: a few queries); heartbeats keep their own interval.
        return max(0.1, min(float(self.settings["heartbeat_interval"]) / 4, 0.5))

    async def cycle(self) -> None:
        """One cycle: settings and self-checks, heartbeats when due; on the primary, the term,
        the settings file, the world, one decision, its actions and the shard map published."""
        now = time.monotonic()
        async with self.pool.connection() as conn:
            self.settings = await settings_db.read_all(conn)
            if now - self.last_self_check >= SELF_CHECK_EVERY:
                self.last_self_check = now
                await nodes_db.heartbeat(conn, self.me.name)
                await self._check_schema(conn)
        if self.schema_error:
            return
        await self.heartbeats.round_if_due(now)
        if not self.leadership.primary:
            self._say("secondary master: heartbeating coreapps, waiting for the Lease")
            return
        async with self.pool.connection() as conn:
            refusal = await self.leadership.hold_term(conn)
            if refusal:
                self._say(refusal)
                return
            await self.settings_file.sync(conn)
            world, rows = await self.world.read(conn, self.settings)
            decision = decide(world)
            for action in decision.actions:
                await self.actions.execute(conn, action, world, self.leadership.term, self.settings,
                                           self.world.addresses)
            self._say(decision.sentence)
            if decision.actions:
                rows = await shard_map.read(conn)  # what the actions changed
            self.status.publish(rows)
            self.status.answer_switchover(self.world.annotations.get(SWITCHOVER_ANNOTATION), decision.switchover)
            if self.status.details_due(now, changed=bool(decision.actions)):
                self.status.publish_details(now, self.leadership.term, rows, self.world.nodes,
                                           await messages_db.queued_by_shard(conn))

    async def _check_schema(self, conn) -> None:
        try:
            await schema.check(conn)
            self.schema_error = None
        except schema.SchemaMismatch as exc:
            if self.schema_error != str(exc):
                log.error("refusing to act: %s", exc)
            self.schema_error = str(exc)
            await nodes_db.set_state(conn, self.me.name, error=str(exc))

    def _say(self, sentence: str) -> None:
        last, at = self.last_sentence
        if sentence != last or time.monotonic() - at > SENTENCE_REPEAT:
            term = self.leadership.term if self.leadership.primary else None
            log.info("%s: %s", self.me.name, sentence, extra={"term": term})
            self.last_sentence = (sentence, time.monotonic())

    def ready(self) -> bool | str:
        return self.schema_error or True
