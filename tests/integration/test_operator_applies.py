"""The operator applies only what changed: an idle cluster gets no server-side apply, and an
owned object someone else edits or deletes is applied again, alone. Applies are counted by the API
server itself (apiserver_request_total, verb APPLY): only the operator uses server-side apply here
(kubectl in these tests applies client-side), so old and new operators are measured alike."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from functools import partial

import pytest

from wacluster_testenv.eventually import eventually

pytestmark = pytest.mark.integration

until = partial(eventually, timeout=120.0, interval=0.5, ignore=(RuntimeError,))
_SAMPLE = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$')
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@pytest.fixture
def ns(k, running_operator):
    name = f"applies-{uuid.uuid4().hex[:8]}"
    k("create", "namespace", name)
    yield name
    k("delete", "namespace", name, "--wait=false", check=False)


def requests(k, verb: str) -> Counter:
    """The API server's count of `verb` requests so far, by resource."""
    counts: Counter = Counter()
    for line in k("get", "--raw", "/metrics").splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        if labels.get("verb") == verb:
            counts[labels.get("resource", "")] += int(float(match["value"]))
    return counts


def passes(k) -> int:
    """Reconcile passes so far: each begins by reading its dbupgrade Job by name, which nothing
    else here does (controllers list and watch)."""
    return requests(k, "GET")["jobs"]


def wake(k, ns: str, n: int) -> None:
    """Make the operator run at least `n` more passes over the cluster without changing anything
    it applies: a write to the master Lease (a watched child it never applies) wakes the loop."""
    target = passes(k) + n
    touches = iter(range(10**6))

    def woken() -> bool:
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": "wa-master", "namespace": ns,
                              "labels": {"app.kubernetes.io/instance": "wa",
                                         "app.kubernetes.io/managed-by": "wacluster-operator"},
                              "annotations": {"test/touch": str(next(touches))}},
                 "spec": {"holderIdentity": "wa-master-test", "leaseDurationSeconds": 15}}
        k("apply", "-f", "-", input=json.dumps(lease))
        return passes(k) >= target

    until(woken, what=f"{n} more reconcile passes")


def ready_and_settled(k, ns: str) -> None:
    manifest = {"apiVersion": "wacluster.io/v1alpha1", "kind": "WhatsAppCluster",
                "metadata": {"name": "wa", "namespace": ns}, "spec": {"version": "1.0.0"}}
    k("apply", "-f", "-", input=json.dumps(manifest))
    until(lambda: (json.loads(k("get", "wac", "wa", "-n", ns, "-o", "json")).get("status") or {}).get("phase")
          == "Ready", what="phase Ready")
    # The controllers' first writes after creation (e.g. a Deployment's revision annotation)
    # may each be answered by one apply; a few passes later everything is as the operator left it.
    wake(k, ns, 3)


def env_of(k, ns: str, deployment: str) -> dict:
    obj = json.loads(k("get", "deployment", deployment, "-n", ns, "-o", "json"))
    return {e["name"]: e.get("value") for e in obj["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_an_idle_cluster_gets_no_server_side_apply(k, ns):
    ready_and_settled(k, ns)
    before = requests(k, "APPLY")
    wake(k, ns, 3)
    applied = requests(k, "APPLY") - before
    assert not applied, f"server-side applies over 3 passes that changed nothing: {dict(applied)}"


def test_an_owned_deployment_edited_by_someone_else_is_put_back_by_applying_it_alone(k, ns):
    ready_and_settled(k, ns)
    assert env_of(k, ns, "wa-master")["WACLUSTER_CLUSTER"] == "wa"
    before = requests(k, "APPLY")
    k("set", "env", "deployment/wa-master", "-n", ns, "WACLUSTER_CLUSTER=someone-elses")
    until(lambda: env_of(k, ns, "wa-master")["WACLUSTER_CLUSTER"] == "wa", what="the operator's value back")
    wake(k, ns, 2)
    applied = requests(k, "APPLY") - before
    assert applied["deployments"] >= 1
    assert set(applied) == {"deployments"}, f"applies of objects nobody touched: {dict(applied)}"


def test_an_owned_object_deleted_by_someone_else_is_created_again_by_applying_it_alone(k, ns):
    ready_and_settled(k, ns)
    uid = json.loads(k("get", "configmap", "wa-settings", "-n", ns, "-o", "json"))["metadata"]["uid"]
    before = requests(k, "APPLY")
    k("delete", "configmap", "wa-settings", "-n", ns)
    until(lambda: json.loads(k("get", "configmap", "wa-settings", "-n", ns, "-o", "json"))["metadata"]["uid"] != uid,
          what="wa-settings created again")
    wake(k, ns, 2)
    applied = requests(k, "APPLY") - before
    assert applied == Counter({"configmaps": 1}), f"applies after one deletion: {dict(applied)}"
