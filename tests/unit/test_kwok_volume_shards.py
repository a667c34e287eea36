"""The test environment's kwok plays volume stages in parallel: one kwok process per shard of
claims, the shards computed from kwok's own stage file without starting anything."""

from __future__ import annotations

import re

import pytest

from wacluster_testenv.controlplane import KWOK_VOLUME_SHARDS, split_kwok_stages

pytestmark = pytest.mark.harness


def _stage(name: str, kind: str) -> str:
    return (f"apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata:\n  name: {name}\nspec:\n"
            f"  resourceRef:\n    apiGroup: v1\n    kind: {kind}\n  selector:\n    matchExpressions:\n"
            f"    - cel:\n        expression: >-\n          !has(self.metadata.deletionTimestamp)\n"
            f"  steps:\n  - delete: true")


STAGES = "\n---\n".join([_stage("pod-ready", "Pod"), _stage("node-initialize", "Node"),
                         _stage("pvc-provision", "PersistentVolumeClaim"), _stage("pv-bind", "PersistentVolume")])


def _shares(shard: str, field: str) -> set[str]:
    rule = re.search(re.escape(field) + r"\.matches\('\^(?:pvc-)?\[([0-9a-f]+)\]'\)", shard)
    assert rule, f"no rule on {field} in:\n{shard}"
    return set(rule.group(1))


def test_node_and_pod_stages_stay_with_the_main_kwok():
    nodes, shards = split_kwok_stages(STAGES, 4)
    assert "pod-ready" in nodes and "node-initialize" in nodes
    assert "pvc-provision" not in nodes and "pv-bind" not in nodes
    assert all("pod-ready" not in shard for shard in shards)


def test_every_claim_falls_in_exactly_one_volume_shard():
    _, shards = split_kwok_stages(STAGES, KWOK_VOLUME_SHARDS)
    assert len(shards) == KWOK_VOLUME_SHARDS > 1
    claim_shares = [_shares(shard, "self.metadata.uid") for shard in shards]
    assert sorted("".join("".join(sorted(s)) for s in claim_shares)) == sorted("0123456789abcdef")


def test_a_claims_volume_is_in_the_same_shard_as_the_claim():
    _, shards = split_kwok_stages(STAGES, KWOK_VOLUME_SHARDS)
    for shard in shards:
        assert _shares(shard, "self.metadata.uid") == _shares(shard, "self.metadata.name")
        assert "self.metadata.name.matches('^pvc-[" in shard
