"""What the primary master publishes on its Lease, which the operator mirrors into the cluster's
status and `kubectl wac status` reads: the shard map (`wacluster.io/shard-map`, changed only when
an owner or epoch changes), the answer to a switchover request, and the live details (leases,
backlog per shard, nodes) refreshed every few seconds."""

from __future__ import annotations

import datetime as dt
import json
import logging

from wacluster.api.interprocess import SHARD_DETAILS_ANNOTATION, SHARD_MAP_ANNOTATION, SWITCHOVER_STATUS_ANNOTATION
from wacluster.db import shard_map
from wacluster.db.nodes import NodeRow
from wacluster.domain.maintenance import SwitchoverState, format_time
from wacluster.kube.lease import KubeLeaseStore
from wacluster.runtime import metrics

log = logging.getLogger("wacluster.master")

DETAILS_EVERY = 5.0  # the live details cost a count of the backlog; not every decision


class ShardMapPublisher:
    def __init__(self, lease_store: KubeLeaseStore | None) -> None:
        self.lease_store = lease_store
        self.published: str | None = None
        self.answered: tuple[str, str, str] | None = None  # (request, state, message) on the Lease
        self.details_at = 0.0

    def publish(self, rows: list[shard_map.ShardRow]) -> None:
        shards = [{"shard": r.shard, "coreapp": r.coreapp if not r.lease_expired else None, "epoch": r.epoch,
                   "since": r.since.strftime("%Y-%m-%dT%H:%M:%SZ")} for r in rows]
        for r in rows:
            metrics.SHARD_CONNECTED.labels(shard=str(r.shard)).set(0 if r.lease_expired or not r.coreapp else 1)
        text = json.dumps(shards, sort_keys=True)
        if self.lease_store is not None and text != self.published:
            # Rides on the next Lease renewal; the operator mirrors it into the cluster status.
            self.lease_store.annotations[SHARD_MAP_ANNOTATION] = text
            self.published = text

    def answer_switchover(self, request: str | None, answer: tuple[SwitchoverState, str] | None) -> None:
        """Say on the Lease what became of the switchover request (and log each new answer)."""
        if self.lease_store is None:
            return
        if request is None or answer is None:
            self.lease_store.annotations.pop(SWITCHOVER_STATUS_ANNOTATION, None)
            self.answered = None
            return
        key = (request, *answer)
        if key == self.answered:
            return
        state, message = answer
        log.info("switchover %s: %s (request %s)", state, message, request)
        self.lease_store.annotations[SWITCHOVER_STATUS_ANNOTATION] = json.dumps(
            {"request": request, "state": state, "message": message,
             "at": format_time(dt.datetime.now(dt.timezone.utc))}, sort_keys=True)
        self.answered = key

    def details_due(self, now: float, changed: bool) -> bool:
        """Every few seconds, and at once when an action changed the shard map."""
        return self.lease_store is not None and (changed or now - self.details_at >= DETAILS_EVERY)

    def publish_details(self, now: float, term: int, rows: list[shard_map.ShardRow], nodes: list[NodeRow],
                        pending: dict[int, int]) -> None:
        self.details_at = now
        details = {
            "at": format_time(dt.datetime.now(dt.timezone.utc)), "term": term,
            "shards": [{"shard": r.shard, "coreapp": r.coreapp, "epoch": r.epoch, "revoked": r.revoked,
                        "leaseUntil": format_time(r.lease_until), "pending": pending.get(r.shard, 0)}
                       for r in rows],
            "nodes": [{"name": n.name, "role": n.role, "version": n.version, "gateway": n.gateway_status,
                       "dbHeartbeatAge": round(n.db_heartbeat_age, 1), "stopping": n.stopping,
                       "primary": n.is_primary, "error": n.error} for n in nodes],
        }
        self.lease_store.annotations[SHARD_DETAILS_ANNOTATION] = json.dumps(details, sort_keys=True)
