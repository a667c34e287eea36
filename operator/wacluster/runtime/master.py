"""`wacluster master`: campaigns for the master Lease; every master heartbeats every coreapp;
the primary reads the world once per cycle, decides once (domain/ha.py), acts with fenced
writes and logs one sentence saying what it did and why."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
from psycopg_pool import AsyncConnectionPool

from wacluster.api.interprocess import (
    MANAGED_BY, SHARD_MAP_ANNOTATION, Env, Label, NotifyKind, Role, master_lease, selector,
)
from wacluster.db import account as account_db
from wacluster.db import nodes as nodes_db
from wacluster.db import schema
from wacluster.db import settings as settings_db
from wacluster.db import shard_map
from wacluster.db.connection import conninfo_from_env, open_pool
from wacluster.db.listener import Listener
from wacluster.domain.election import LeaderElector, Timings, term_to_claim
from wacluster.domain.ha import Action, CoreappState, ShardState, World, decide, lease_ttl
from wacluster.kube.connection import api_client
from wacluster.kube.lease import KubeLeaseStore, campaign
from wacluster.kube.pods import coreapp_pods
from wacluster.runtime import metrics
from wacluster.runtime.node import NodeIdentity, identity
from wacluster.runtime.service import add_role_parser, configure_logging, first_of, metrics_app, run_apps, run_loop

log = logging.getLogger("wacluster.master")

MASTER_ALIVE_AFTER = 10.0  # a master whose database heartbeat is older counts as gone
SENTENCE_REPEAT = 60.0     # repeat an unchanged sentence this often, so the log shows liveness
SELF_CHECK_EVERY = 1.0     # own database heartbeat, schema check and pod listing: not every decision


class Master:
    def __init__(self, me: NodeIdentity, pool: AsyncConnectionPool, lease_store: KubeLeaseStore | None,
                 settings_file: Path | None) -> None:
        self.me = me
        self.pool = pool
        self.lease_store = lease_store
        self.settings_file = settings_file
        self.settings: dict[str, Any] = dict(settings_db.DEFAULTS)
        self.primary = False
        self.elector: LeaderElector | None = None
        self.leadership = 0         # counts the elector's starts and stops of leading
        self.term = 0
        self.term_claimed = False
        self.schema_error: str | None = None
        self.wake = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None
        self.last_sentence = ("", 0.0)
        self.last_ping = 0.0
        self.synced_file: str | None = None
        self.published_map: str | None = None
        # Coreapps that failed a direct check just before a promotion; cleared when they answer.
        self.unreachable: set[str] = set()
        # Kubernetes signals (pods): set by run() when the master knows its cluster's name.
        self.pod_api = None
        self.namespace = "default"
        self.cluster = ""
        self.last_self_check = 0.0
        self.registered = False     # once registered, always registered
        self.addresses: dict[str, str] = {}  # coreapp -> control address, from the last read
        self.pods: tuple[float, set[str], set[str]] = (0.0, set(), set())  # (listed at, names, terminating)

    # --- election ----------------------------------------------------------------------------

    async def _started_leading(self, term: int) -> None:
        self.term, self.primary, self.term_claimed = term, True, False
        self.leadership += 1
        metrics.IS_PRIMARY.set(1)
        metrics.TERM.set(term)
        self.wake.set()

    async def _stopped_leading(self) -> None:
        self.primary, self.term_claimed = False, False
        self.leadership += 1
        metrics.IS_PRIMARY.set(0)
        log.info("%s is no longer the primary master", self.me.name)
        try:
            async with self.pool.connection() as conn:
                await nodes_db.set_state(conn, self.me.name, is_primary=False)
        except Exception as exc:
            log.warning("could not record stepping down: %s", exc)

    async def _elect(self, stop: asyncio.Event) -> None:
        s = self.settings
        timings = Timings(float(s["lease_duration"]), float(s["renew_deadline"]), float(s["retry_period"]))
        self.elector = LeaderElector(self.lease_store, self.me.name, timings)
        await campaign(self.elector, self.lease_store, self._started_leading, self._stopped_leading, stop)

    async def _hold_term(self, conn) -> str | None:
        """Make this Lease holder's term the one the database fences shard-map writes with.
        Returns None when this master may act in this cycle, else the sentence saying why not.

        Why a master that lost its Lease cannot act on a term, including an old holder that
        still believes it holds a Lease object that was deleted and created again:
        1. `master_term` keeps one (term, holder), a claim only raises it, and every shard-map
           write requires it to be the writer's own: only the last claimant's writes land.
        2. A term is raised only by a conditional write to the Lease (`raise_term`): a master
           whose Lease was taken, or deleted and created again, gets a conflict and claims
           nothing, so it never out-claims the holder. The raised term sits in the Lease, so
           whoever takes that Lease next starts above it.
        3. Terms of two Lease objects can tie or invert (a new object starts at 1; an old holder
           may have raised its object's term and not claimed it yet). So a claim counts only if
           a read after it still shows this master holding the Lease with that term (`holds`).
           Whoever holds the Lease later acquired it after that read, reads `master_term` after
           it, and claims above this term (`term_to_claim`) before its first write; one that
           read before our claim either is refused and tries again above us, or fences us.
        4. Every cycle the primary checks that `master_term` still shows its own term, and its
           Lease too (a Lease it created again after a deletion starts at 1); if not, it stops
           acting and starts again from 2.
        """
        recorded = await shard_map.read_term(conn)
        if self.term_claimed:
            if recorded == (self.term, self.me.name) and self.elector.term == self.term:
                return None
            if recorded != (self.term, self.me.name):
                log.warning("%s: term %d is no longer the recorded one (now %s); claiming again",
                            self.me.name, self.term, "none" if recorded is None else "term %d of %s" % recorded)
            else:  # this master created the Lease again after it was deleted: a new object, a new term
                log.info("%s: the Lease was created again (its term is %d); claiming a new term",
                         self.me.name, self.elector.term)
            self.term_claimed = False
        leadership = self.leadership
        lease_term = self.elector.term
        term = await self.elector.raise_term(term_to_claim(lease_term, recorded, self.me.name))
        if term is None:
            return "holds the Lease no longer (it changed hands or cannot be read); not acting"
        if term != lease_term and recorded is not None:
            log.info("%s: raised the term in the Lease from %d to %d: term %d of %s was already recorded "
                     "(the Lease was created again, or another holder claimed first)",
                     self.me.name, lease_term, term, *recorded)
        if not await shard_map.claim_term(conn, term, self.me.name):
            return f"could not claim term {term}: a newer term was claimed meanwhile; not acting"
        if not await self.elector.holds(term) or leadership != self.leadership:
            return f"claimed term {term} but no longer holds the Lease; not acting"
        self.term, self.term_claimed = term, True
        metrics.TERM.set(term)
        await nodes_db.mark_primary(conn, self.me.name)
        log.info("%s is the primary master (term %d)", self.me.name, term)
        # A fresh primary must judge with fresh heartbeats of its own.
        await self._heartbeat_coreapps()
        return None

    # --- the HA loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self.session = aiohttp.ClientSession()
        async with self.pool.connection() as conn:
            await nodes_db.register(conn, self.me.name, Role.MASTER, self.me.node_id, self.me.address, self.me.version)
            self.settings = await settings_db.read_all(conn)
        log.info("%s started; campaigning for the master Lease", self.me.display)
        listener = Listener(self.pool, self._notified)
        election_stop = asyncio.Event()
        tasks = [asyncio.create_task(listener.run(), name="listener")]
        if self.lease_store is not None:
            tasks.append(asyncio.create_task(self._elect(election_stop), name="election"))
        try:
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
        finally:
            election_stop.set()  # releases the Lease: a watching secondary takes over at once
            if len(tasks) > 1:
                await asyncio.wait_for(asyncio.shield(tasks[1]), timeout=5)
            tasks[0].cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await listener.close()
            await self.session.close()
            try:
                async with self.pool.connection() as conn:
                    await nodes_db.remove(conn, self.me.name)
            except Exception as exc:
                log.warning("could not remove the node record: %s", exc)

    def _notified(self, payload: dict) -> None:
        kind = payload.get("kind")
        if kind == NotifyKind.HANDOFF:
            # A planned handoff: pick the successor from heartbeats taken now, not a beat ago.
            self.last_ping = 0.0
        if kind in (NotifyKind.HANDOFF, NotifyKind.ACCOUNT, NotifyKind.SETTINGS, NotifyKind.LISTENING):
            self.wake.set()

    def _period(self) -> float:
        # Decide often (cheap: a few queries); heartbeats keep their own interval.
        return max(0.1, min(float(self.settings["heartbeat_interval"]) / 4, 0.5))

    async def cycle(self) -> None:
        now = time.monotonic()
        async with self.pool.connection() as conn:
            self.settings = await settings_db.read_all(conn)
            if now - self.last_self_check >= SELF_CHECK_EVERY:
                self.last_self_check = now
                await nodes_db.heartbeat(conn, self.me.name)
                await self._check_schema(conn)
        if self.schema_error:
            return
        if now - self.last_ping >= float(self.settings["heartbeat_interval"]):
            self.last_ping = now
            await self._heartbeat_coreapps()
        if not self.primary:
            self._say("secondary master: heartbeating coreapps, waiting for the Lease")
            return
        async with self.pool.connection() as conn:
            refusal = await self._hold_term(conn)
            if refusal:
                self._say(refusal)
                return
            await self._sync_settings_file(conn)
            world, rows = await self._read_world(conn)
            decision = decide(world)
            for action in decision.actions:
                await self._execute(conn, action, world)
            self._say(decision.sentence)
            if decision.actions:
                rows = await shard_map.read(conn)  # what the actions changed
            self._publish(rows)

    async def _check_schema(self, conn) -> None:
        try:
            await schema.check(conn)
            self.schema_error = None
        except schema.SchemaMismatch as exc:
            if self.schema_error != str(exc):
                log.error("refusing to act: %s", exc)
            self.schema_error = str(exc)
            await nodes_db.set_state(conn, self.me.name, error=str(exc))

    async def _heartbeat_coreapps(self) -> None:
        async with self.pool.connection() as conn:
            coreapps = await nodes_db.list_nodes(conn, Role.COREAPP)
        timeout = aiohttp.ClientTimeout(total=max(0.2, min(float(self.settings["heartbeat_interval"]), 2.0)))

        results = dict(await asyncio.gather(*(self._ping(n.name, n.address, timeout) for n in coreapps)))
        async with self.pool.connection() as conn:
            await nodes_db.record_heartbeats(conn, self.me.name, results)

    async def _ping(self, name: str, address: str, timeout: aiohttp.ClientTimeout) -> tuple[str, float | None]:
        started = time.monotonic()
        try:
            async with self.session.get(f"http://{address}/heartbeat", timeout=timeout) as resp:
                if resp.status != 200:
                    raise aiohttp.ClientError(f"status {resp.status}")
                await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            metrics.COREAPP_HEALTHY.labels(coreapp=name).set(0)
            return name, None
        rtt = time.monotonic() - started
        metrics.HEARTBEAT_RTT.observe(rtt)
        metrics.COREAPP_HEALTHY.labels(coreapp=name).set(1)
        self.unreachable.discard(name)
        return name, rtt * 1000

    async def _read_world(self, conn) -> tuple[World, list[shard_map.ShardRow]]:
        rows = await shard_map.read(conn)
        nodes = await nodes_db.list_nodes(conn)
        views = await nodes_db.heartbeat_views(conn)
        alive_masters = {n.name for n in nodes if n.role == Role.MASTER and n.db_heartbeat_age < MASTER_ALIVE_AFTER}
        since_answer: dict[str, float | None] = {}
        for view in views:
            if view.master not in alive_masters or view.since_ok is None:
                continue
            best = since_answer.get(view.coreapp)
            since_answer[view.coreapp] = view.since_ok if best is None else min(best, view.since_ok)
        gone = await self._pods_gone({n.name for n in nodes if n.role == Role.COREAPP})
        coreapps = {n.name: CoreappState(n.name, n.db_heartbeat_age, n.stopping,
                                         None if n.name in self.unreachable else since_answer.get(n.name),
                                         pod_gone=n.name in gone)
                    for n in nodes if n.role == Role.COREAPP}
        for node in nodes:
            metrics.DB_HEARTBEAT_AGE.labels(node=node.name).set(node.db_heartbeat_age)
        self.addresses = {n.name: n.address for n in nodes if n.role == Role.COREAPP}
        if not self.registered:
            self.registered = await account_db.registered_phone(conn) is not None
        s = self.settings
        world = World(
            shards=[ShardState(r.shard, r.coreapp, r.epoch, r.lease_expired, r.revoked) for r in rows],
            coreapps=coreapps, shard_count=int(s["shards"]), masters_alive=len(alive_masters),
            registered=self.registered, heartbeat_interval=float(s["heartbeat_interval"]),
            unhealthy_interval=float(s["unhealthy_interval"]), db_unhealthy_after=float(s["db_unhealthy_after"]))
        return world, rows

    async def _pods_gone(self, coreapps: set[str]) -> set[str]:
        """Coreapps whose pod is terminating or no longer exists (only when running in a cluster)."""
        if self.pod_api is None or not self.cluster:
            return set()
        listed_at, names, terminating = self.pods
        if time.monotonic() - listed_at >= SELF_CHECK_EVERY:  # one list call a second, not per decision
            try:
                names, terminating = await coreapp_pods(self.pod_api, self.namespace, self.cluster)
            except Exception as exc:  # the API server may be away; the shard lease still protects
                log.warning("cannot list coreapp pods: %s", exc)
                return set()
            self.pods = (time.monotonic(), names, terminating)
        return terminating | (coreapps - names)

    async def _execute(self, conn, action: Action, world: World) -> None:
        s = self.settings
        if action.kind == "ensure_shards":
            await shard_map.ensure_shards(conn, world.shard_count, self.term, self.me.name)
        elif action.kind == "resize":
            await shard_map.resize(conn, world.shard_count, self.term, self.me.name)
        elif action.kind == "revoke":
            await shard_map.revoke(conn, action.shard, action.epoch, self.term, self.me.name, action.reason)
        elif action.kind == "promote":
            started = time.monotonic()
            # Check the candidate answers right now: the shared heartbeat table may be a beat old.
            address = self.addresses.get(action.coreapp)
            if address is None or (await self._ping(action.coreapp, address, aiohttp.ClientTimeout(total=0.5)))[1] is None:
                self.unreachable.add(action.coreapp)
                log.warning("%s did not answer before its promotion for shard %d; choosing again",
                            action.coreapp, action.shard)
                self.wake.set()
                return
            ttl = lease_ttl(float(s["heartbeat_interval"]), float(s["unhealthy_interval"]))
            epoch = await shard_map.promote(conn, action.shard, action.epoch, action.coreapp, ttl,
                                            self.term, self.me.name, action.reason)
            if epoch is None:
                log.warning("promotion of %s for shard %d was refused (fenced or raced)", action.coreapp, action.shard)
                return
            metrics.PROMOTION_SECONDS.observe(time.monotonic() - started)
            previous = next((sh.coreapp for sh in world.shards if sh.shard == action.shard), None)
            state = world.coreapps.get(previous) if previous else None
            if state is not None and state.since_answer is not None:
                metrics.DETECTION_SECONDS.observe(state.since_answer)
            metrics.FAILOVERS.labels(reason=_reason_label(action.reason)).inc()
            metrics.SHARD_EPOCH.labels(shard=str(action.shard)).set(epoch)

    async def _sync_settings_file(self, conn) -> None:
        """The operator's ConfigMap (spec.monitoring, spec.shards) wins whenever it changes."""
        if not self.settings_file or not self.settings_file.exists():
            return
        text = self.settings_file.read_text()
        if text == self.synced_file:
            return
        changed = await settings_db.write(conn, json.loads(text))
        if changed:
            log.info("applied settings from %s: %s", self.settings_file, settings_db.dumps(changed))
        self.synced_file = text

    def _publish(self, rows: list[shard_map.ShardRow]) -> None:
        shards = [{"shard": r.shard, "coreapp": r.coreapp if not r.lease_expired else None, "epoch": r.epoch,
                   "since": r.since.strftime("%Y-%m-%dT%H:%M:%SZ")} for r in rows]
        for r in rows:
            metrics.SHARD_CONNECTED.labels(shard=str(r.shard)).set(0 if r.lease_expired or not r.coreapp else 1)
        text = json.dumps(shards, sort_keys=True)
        if self.lease_store is not None and text != self.published_map:
            # Rides on the next Lease renewal; the operator mirrors it into the cluster status.
            self.lease_store.annotations[SHARD_MAP_ANNOTATION] = text
            self.published_map = text

    def _say(self, sentence: str) -> None:
        last, at = self.last_sentence
        if sentence != last or time.monotonic() - at > SENTENCE_REPEAT:
            log.info("%s: %s", self.me.name, sentence)
            self.last_sentence = (sentence, time.monotonic())

    def ready(self) -> bool | str:
        return self.schema_error or True


def _reason_label(reason: str) -> str:
    for key, label in (("planned handoff", "planned"), ("stopping", "planned"), ("heartbeat", "heartbeat"),
                       ("database heartbeat", "db_heartbeat"), ("lease expired", "lease_expired"),
                       ("gone", "gone"), ("no coreapp", "unassigned")):
        if key in reason:
            return label
    return "other"




def add_parser(subparsers) -> None:
    add_role_parser(subparsers, Role.MASTER, "run a master (Lease-elected primary or secondary)", run,
                    control_port=False)


def run(args: argparse.Namespace) -> int:
    configure_logging()

    async def main() -> None:
        pool = await open_pool(conninfo_from_env(), max_size=6)
        api = await api_client()
        namespace = os.environ.get(Env.NAMESPACE, "default")
        lease_name = os.environ.get(Env.LEASE_NAME, master_lease("wacluster"))
        cluster = os.environ.get(Env.CLUSTER, "")
        # The operator watches Leases by these labels to re-read the holder and the shard map.
        store = KubeLeaseStore(api, namespace, lease_name,
                               {**selector(cluster, Role.MASTER), Label.MANAGED_BY: MANAGED_BY} if cluster else None)
        settings_file = os.environ.get(Env.SETTINGS_FILE)
        master = Master(identity(None), pool, store, Path(settings_file) if settings_file else None)
        master.pod_api, master.namespace, master.cluster = api, namespace, cluster
        apps = [(metrics_app(master.ready), args.host, args.metrics_port)] if args.metrics_port else []
        try:
            await run_apps(apps, master.run)
        finally:
            await api.close()
            await pool.close()

    run_loop(main())
    return 0
