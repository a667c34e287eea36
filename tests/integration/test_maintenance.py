"""Maintenance on a running cluster: `kubectl wac` and the annotations it writes (switchover,
fence, unfence), carried out by real masters and coreapps against the local control plane and
PostgreSQL. The WhatsAppCluster object is real (the CRD is installed); no operator runs, so the
roles are local processes and their pods are API objects standing for them (the master reads
the pods to tell a deleted coreapp; see test_runtime_ha.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from wacluster.api.interprocess import (FENCED_ANNOTATION, SHARD_DETAILS_ANNOTATION, SWITCHOVER_STATUS_ANNOTATION,
                                        Env, Label, Role)
from wacluster.api.v1alpha1 import GROUP, KIND, VERSION
from runtime_cluster import connected, start, webapp
from wacluster_testenv.eventually import eventually

pytestmark = pytest.mark.integration

PLUGIN = str(Path(sys.executable).parent / "kubectl-wac")
PLANNED = "because it handed the shard off for maintenance"


@pytest.fixture
def maintained(cluster, k, crd):
    """A WhatsAppCluster object, pods standing for coreapps wacore1..3, and the masters told the
    cluster's name (so they follow its annotations). Roles are started by each test."""
    name = f"mnt-{cluster.lease_name[-6:]}"
    cluster.lease_name = f"{name}-master"  # the name the plugin derives from the cluster's
    k("apply", "-f", "-", input=json.dumps({"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
                                             "metadata": {"name": name, "namespace": "default"}, "spec": {}}))
    for coreapp in ("wacore1", "wacore2", "wacore3"):
        k("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": coreapp, "namespace": "default",
                          "labels": {Label.CLUSTER: name, Label.COMPONENT: Role.COREAPP}},
             "spec": {"containers": [{"name": "coreapp", "image": "wacluster:test"}]}}))
    original_start_master = cluster.start_master
    cluster.start_master = lambda master, env=None: original_start_master(master, env={Env.CLUSTER: name, **(env or {})})
    yield name
    k("delete", "pod", "wacore1", "wacore2", "wacore3", "-n", "default", "--ignore-not-found", "--wait=false",
      check=False)
    k("delete", KIND.lower(), name, "-n", "default", "--ignore-not-found", "--wait=false", check=False)


def wac(kubeconfig: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([PLUGIN, "-n", "default", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "KUBECONFIG": kubeconfig})


def lease_annotation(k, lease: str, key: str):
    out = k("get", "lease", lease, "-n", "default", "-o", "json")
    text = (json.loads(out)["metadata"].get("annotations") or {}).get(key)
    return json.loads(text) if text else None


def failover_reasons(cluster) -> list[tuple[str, str, str]]:
    return cluster.query("SELECT from_coreapp, to_coreapp, reason FROM failovers ORDER BY id")


def test_switchover_hands_the_shard_to_the_chosen_coreapp_and_loses_nothing(cluster, maintained, kubeconfig, k):
    # Failure detection slowed far out of reach: only a planned handoff can move the shard soon.
    cluster.configure(heartbeat_interval=5.0, unhealthy_interval=30.0)
    start(cluster, masters=2, coreapps=3)
    api = webapp(cluster)
    owner = eventually(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
    target = sorted({"wacore1", "wacore2", "wacore3"} - {owner})[-1]
    results: list[str | None] = []
    sending = threading.Event()
    sending.set()

    def sender():
        i = 0
        while sending.is_set() and i < 3000:
            results.append(api.send_until_accepted(f"+1555400{i:04d}", "switchover"))
            i += 1

    thread = threading.Thread(target=sender)
    thread.start()
    try:
        eventually(lambda: any(results), 30, what="messages accepted before the switchover")
        done = wac(kubeconfig, "switchover", maintained, "--shard", "0", "--to", target)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"Completed: shard 0 is served by {target}" in done.stdout
        eventually(lambda: (connected(cluster) or {}).get(0, (None,))[0] == target, 30, what=f"{target} serving shard 0")
        before = len(results)
        eventually(lambda: any(results[before:]), 30, what="messages accepted after the switchover")
    finally:
        sending.clear()
        thread.join()
    assert failover_reasons(cluster)[-1] == (owner, target, f"{owner} lost shard 0 {PLANNED}")
    assert cluster.roles[owner].proc.poll() is None, "the previous owner keeps running as a standby"
    accepted = [r for r in results if r]
    eventually(lambda: set(accepted) <= {d["id"] for d in cluster.gateway("/inspect/deliveries")["deliveries"]},
               30, what="every accepted message delivered")
    report = cluster.gateway("/inspect/deliveries")
    assert report["duplicates"] == [] and report["conflicts"] == []
    answer = lease_annotation(k, cluster.lease_name, SWITCHOVER_STATUS_ANNOTATION)
    assert answer["state"] == "Completed" and f"served by {target}" in answer["message"]


def test_a_fenced_coreapp_hands_its_shard_off_and_is_never_promoted_until_unfenced(cluster, maintained, kubeconfig, k):
    start(cluster, masters=2, coreapps=2)
    owner = eventually(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
    other = ({"wacore1", "wacore2"} - {owner}).pop()
    done = wac(kubeconfig, "fence", maintained, owner)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{owner} owns no shard" in done.stdout
    eventually(lambda: (connected(cluster) or {}).get(0, (None,))[0] == other, 30, what=f"{other} serving shard 0")
    assert failover_reasons(cluster)[-1] == (owner, other, f"{owner} lost shard 0 {PLANNED}")

    # The only standby left is fenced: killing the owner leaves the shard unassigned.
    cluster.roles[other].signal(signal.SIGKILL)
    masters = ("master1", "master2")
    eventually(lambda: any("no healthy standby to promote, shard 0 stays unassigned" in cluster.roles[m].output()
                           for m in masters), 60, what="the master refusing to promote the fenced coreapp")
    assert all(to != owner for _, to, _ in failover_reasons(cluster)[1:]), failover_reasons(cluster)

    # Declaratively, as a GitOps user would: removing the annotation lets it be promoted again.
    k("annotate", KIND.lower(), maintained, "-n", "default", f"{FENCED_ANNOTATION}-")
    eventually(lambda: (connected(cluster) or {}).get(0, (None,))[0] == owner, 60, what=f"{owner} promoted again")


def test_a_switchover_that_cannot_happen_waits_or_is_refused_with_its_reason_and_moves_nothing(cluster, maintained,
                                                                                       kubeconfig, k):
    start(cluster, masters=1, coreapps=2)
    owner, epoch = eventually(lambda: connected(cluster), 30, what="shard 0 connected")[0]
    waiting = wac(kubeconfig, "switchover", maintained, "--shard", "0", "--to", "no-such-coreapp", "--timeout", "5")
    assert waiting.returncode == 1 and "no completed switchover within 5s" in waiting.stderr
    assert "Waiting: no-such-coreapp cannot take shard 0: no such coreapp is running" in waiting.stdout
    refused = wac(kubeconfig, "switchover", maintained, "--shard", "7", "--timeout", "30")
    assert refused.returncode == 1 and "there is no shard 7" in refused.stderr
    assert cluster.shard_owners()[0] == (owner, epoch)


def test_status_shows_conditions_primary_shards_backlog_and_nodes_in_one_screen(cluster, maintained, kubeconfig, k):
    start(cluster, masters=2, coreapps=2)
    owner, epoch = eventually(lambda: connected(cluster), 30, what="shard 0 connected")[0]
    primary = cluster.primary_master()
    eventually(lambda: [s["coreapp"] for s in (lease_annotation(k, cluster.lease_name, SHARD_DETAILS_ANNOTATION)
                                               or {}).get("shards", [])] == [owner], 30,
               what="the master's live details on its Lease")
    assert wac(kubeconfig, "fence", maintained, "wacore3", "--timeout", "0").returncode == 0
    shown = wac(kubeconfig, "status", maintained)
    assert shown.returncode == 0, shown.stderr
    screen = shown.stdout
    assert f"Primary master: {primary} (term " in screen
    shard_line = next(line for line in screen.splitlines() if line.strip().startswith("0 "))
    assert owner in shard_line and f" {epoch} " in shard_line and "s " in shard_line  # lease left, in seconds
    node_lines = [line for line in screen.splitlines() if line.strip().startswith("wacore")]
    assert {line.split()[0] for line in node_lines} == {"wacore1", "wacore2", "wacore3"}
    assert any(line.split()[0] == owner and "connected" in line for line in node_lines)
    assert "Fenced: wacore3" in screen and "Switchover: none requested" in screen
    missing = wac(kubeconfig, "status", "no-such-cluster")
    assert missing.returncode == 1 and "no WhatsAppCluster default/no-such-cluster" in missing.stdout


def test_logs_and_bundle_cover_every_pod_of_the_cluster(cluster, maintained, kubeconfig, tmp_path):
    logs = wac(kubeconfig, "logs", maintained, "--role", "coreapp")
    assert logs.returncode == 0, logs.stderr
    # The pods here are API objects without a node: each is listed, with why it has no log. (An
    # operator the suite runs may have added the cluster's own coreapp pods beside them.)
    listed = {line.split("]")[0][1:] for line in logs.stdout.splitlines()}
    assert {"wacore1/coreapp", "wacore2/coreapp", "wacore3/coreapp"} <= listed
    assert all(name.startswith(("wacore", f"{maintained}-coreapp-")) for name in listed), listed
    bundle = wac(kubeconfig, "bundle", maintained, "-o", str(tmp_path / "bundle.txt"))
    assert bundle.returncode == 0, bundle.stderr
    text = (tmp_path / "bundle.txt").read_text()
    assert f"===== WhatsAppCluster default/{maintained} =====" in text and "===== logs wacore2/coreapp =====" in text
