"""The simulated nodes of the test environment, computed without starting it."""

from __future__ import annotations

import pytest

from wacluster.api.v1alpha1 import WhatsAppClusterSpec
from wacluster.resources.cluster import owned_objects
from wacluster.resources.pods import ClusterView
from wacluster_testenv.controlplane import FAKE_NODES, _fake_node

pytestmark = pytest.mark.harness

SCALE_BENCHMARK_CLUSTERS = 50  # bench/operator_scale.py's default


def _running_pods_of_a_default_cluster() -> int:
    view = ClusterView("wa", "ns", "uid-1", WhatsAppClusterSpec.model_validate({}), "1.0.0")
    # Job pods complete and stop counting against a node's pod limit.
    return sum(o["spec"]["replicas"] for o in owned_objects(view, "1.0.0")
               if o["kind"] in ("Deployment", "StatefulSet"))


def test_kwok_nodes_have_room_for_the_scale_benchmarks_clusters():
    slots = sum(int(_fake_node(name, zone)["status"]["allocatable"]["pods"]) for name, zone in FAKE_NODES)
    assert slots >= SCALE_BENCHMARK_CLUSTERS * _running_pods_of_a_default_cluster()
