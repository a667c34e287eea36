"""Reading the World that `ha.decide` judges: the shard map, the nodes, the masters' heartbeats
and, in a cluster, the coreapps' pods; once per cycle."""

from __future__ import annotations

import logging
import time
from typing import Any

from wacluster.api.interprocess import FENCED_ANNOTATION, SWITCHOVER_ANNOTATION, Role
from wacluster.db import account as account_db
from wacluster.db import nodes as nodes_db
from wacluster.db import shard_map
from wacluster.domain.ha import CoreappState, ShardState, World
from wacluster.domain.maintenance import parse_fenced, parse_switchover
from wacluster.kube.pods import coreapp_pods
from wacluster.runtime import metrics

log = logging.getLogger("wacluster.master")

MASTER_ALIVE_AFTER = 10.0  # a master whose database heartbeat is older counts as gone
PODS_LISTED_EVERY = 1.0    # one list call a second, not one per decision


class WorldReader:
    def __init__(self, unreachable: set[str], pod_api=None, namespace: str = "default", cluster: str = "") -> None:
        # Coreapps that failed a direct check count as not answering (shared with Heartbeats).
        self.unreachable = unreachable
        # Kubernetes signals (pods): only when the master knows its cluster's name.
        self.pod_api = pod_api
        self.namespace = namespace
        self.cluster = cluster
        self.registered = False     # once registered, always registered
        self.addresses: dict[str, str] = {}  # coreapp -> control address, from the last read
        self.pods: tuple[float, set[str], set[str]] = (0.0, set(), set())  # (listed at, names, terminating)
        self.annotations: dict[str, str] = {}  # the WhatsAppCluster's, kept current by its watch
        self.nodes: list[nodes_db.NodeRow] = []  # from the last read, for the published details

    async def read(self, conn, settings: dict[str, Any]) -> tuple[World, list[shard_map.ShardRow]]:
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
        s = settings
        self.nodes = nodes
        requested = self.annotations.get(SWITCHOVER_ANNOTATION)
        world = World(
            shards=[ShardState(r.shard, r.coreapp, r.epoch, r.lease_expired, r.revoked, r.since, r.reason) for r in rows],
            coreapps=coreapps, shard_count=int(s["shards"]), masters_alive=len(alive_masters),
            registered=self.registered, heartbeat_interval=float(s["heartbeat_interval"]),
            unhealthy_interval=float(s["unhealthy_interval"]), db_unhealthy_after=float(s["db_unhealthy_after"]),
            fenced=parse_fenced(self.annotations.get(FENCED_ANNOTATION)),
            switchover=parse_switchover(requested), now=rows[0].read_at if rows else None)
        return world, rows

    async def _pods_gone(self, coreapps: set[str]) -> set[str]:
        """Coreapps whose pod is terminating or no longer exists (only when running in a cluster)."""
        if self.pod_api is None or not self.cluster:
            return set()
        listed_at, names, terminating = self.pods
        if time.monotonic() - listed_at >= PODS_LISTED_EVERY:
            try:
                names, terminating = await coreapp_pods(self.pod_api, self.namespace, self.cluster)
            except Exception as exc:  # the API server may be away; the shard lease still protects
                log.warning("cannot list coreapp pods: %s", exc)
                return set()
            self.pods = (time.monotonic(), names, terminating)
        return terminating | (coreapps - names)
