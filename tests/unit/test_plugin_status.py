"""`kubectl wac status`'s screen from the objects it reads (render is a pure function)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from wacluster.plugin.status import render

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 11, 24, 12, 0, 30, tzinfo=dt.timezone.utc)
CLUSTER = {"metadata": {"name": "wa", "namespace": "ns", "generation": 2,
                        "annotations": {"wacluster.io/fenced": "wa-coreapp-b"}},
           "status": {"phase": "Ready", "version": "2.1", "observedGeneration": 2,
                      "conditions": [{"type": "Ready", "status": "True", "reason": "AllRolesReady",
                                      "message": "every role is ready"}]}}


def lease(snapshot_at: str, lease_until: str) -> dict:
    details = {"at": snapshot_at, "term": 7,
               "shards": [{"shard": 0, "coreapp": "wa-coreapp-a", "epoch": 4, "revoked": False,
                           "leaseUntil": lease_until, "pending": 12}],
               "nodes": [{"name": "wa-coreapp-a", "role": "coreapp", "gateway": "connected", "dbHeartbeatAge": 0.4,
                          "stopping": False, "primary": False, "error": None, "version": "2.1"}]}
    shard_map = [{"shard": 0, "coreapp": "wa-coreapp-a", "epoch": 4, "since": "2026-11-24T11:00:00Z"}]
    return {"metadata": {"annotations": {"wacluster.io/shard-details": json.dumps(details),
                                         "wacluster.io/shard-map": json.dumps(shard_map)}},
            "spec": {"holderIdentity": "wa-master-x", "leaseTransitions": 3, "renewTime": "2026-11-24T12:00:29.000000Z"}}


def test_the_lease_left_is_counted_at_the_masters_snapshot_not_now():
    # The snapshot is 10 s old; the lease had 2 s left then (renewed since, every third of it).
    screen = render(CLUSTER, lease("2026-11-24T12:00:20.000000Z", "2026-11-24T12:00:22.000000Z"), [], NOW)
    shard_line = next(line for line in screen.splitlines() if line.strip().startswith("0 "))
    assert shard_line.split()[:5] == ["0", "wa-coreapp-a", "4", "2.0s", "12"]
    assert "database view 10.0s old" in screen


def test_one_screen_names_the_primary_its_term_the_fenced_and_unhosted_nodes():
    screen = render(CLUSTER, lease("2026-11-24T12:00:29.000000Z", "2026-11-24T12:00:31.000000Z"), [], NOW)
    assert "Primary master: wa-master-x (term 7, 3 Lease transitions, renewed 1.0s ago)" in screen
    assert "Fenced: wa-coreapp-b" in screen and "Switchover: none requested" in screen
    node = next(line for line in screen.splitlines() if line.strip().startswith("wa-coreapp-a"))
    assert "connected" in node and "no pod" in node
