"""Publishing the shard map: metrics, and the `wacluster.io/shard-map` annotation on the master
Lease, which the operator mirrors into the cluster's status."""

from __future__ import annotations

import json

from wacluster.api.interprocess import SHARD_MAP_ANNOTATION
from wacluster.db import shard_map
from wacluster.kube.lease import KubeLeaseStore
from wacluster.runtime import metrics


class ShardMapPublisher:
    def __init__(self, lease_store: KubeLeaseStore | None) -> None:
        self.lease_store = lease_store
        self.published: str | None = None

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
