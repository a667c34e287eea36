"""The operator's side of maintenance: the fence and switchover annotations on a WhatsAppCluster,
and the primary master's answer on its Lease, become the Fenced and Switchover conditions and
events. The masters here are kwok pods, so the test writes the answer on the Lease itself, as the
primary master does (runtime/master/status.py); test_maintenance.py covers the masters' side."""

from __future__ import annotations

import json
import uuid
from functools import partial

import pytest

from wacluster.api.interprocess import (FENCED_ANNOTATION, MANAGED_BY, SWITCHOVER_ANNOTATION,
                                        SWITCHOVER_STATUS_ANNOTATION, Label, Role, selector)
from wacluster_testenv.eventually import eventually

pytestmark = pytest.mark.integration

until = partial(eventually, timeout=90.0, interval=0.5, ignore=(RuntimeError,))
REQUEST = '{"requestedAt": "2026-11-24T12:00:00.000000Z", "shard": 0, "to": "wa-coreapp-x"}'


@pytest.fixture
def ns(k, running_operator):
    name = f"mt-{uuid.uuid4().hex[:8]}"
    k("create", "namespace", name)
    yield name
    k("delete", "namespace", name, "--wait=false", check=False)


def condition(k, ns, kind):
    body = json.loads(k("get", "wac", "wa", "-n", ns, "-o", "json"))
    return {c["type"]: c for c in (body.get("status") or {}).get("conditions") or []}.get(kind) or {}


def event_reasons(k, ns):
    events = json.loads(k("get", "events", "-n", ns, "-o", "json"))["items"]
    return {e["reason"]: e["message"] for e in events if e["involvedObject"].get("kind") == "WhatsAppCluster"}


def test_fencing_and_a_switchover_show_in_conditions_and_events(k, ns):
    k("apply", "-f", "-", input=json.dumps({"apiVersion": "wacluster.io/v1alpha1", "kind": "WhatsAppCluster",
                                             "metadata": {"name": "wa", "namespace": ns}, "spec": {"version": "1.0.0"}}))
    until(lambda: condition(k, ns, "Fenced").get("reason") == "NoneFenced", what="the Fenced condition")

    k("annotate", "wac", "wa", "-n", ns, f"{FENCED_ANNOTATION}=wa-coreapp-a,wa-coreapp-b")
    fenced = until(lambda: (c := condition(k, ns, "Fenced")).get("status") == "True" and c, what="Fenced True")
    assert fenced["reason"] == "CoreappsFenced" and "wa-coreapp-a, wa-coreapp-b" in fenced["message"]
    until(lambda: "CoreappsFenced" in event_reasons(k, ns), what="a CoreappsFenced event")

    k("annotate", "wac", "wa", "-n", ns, f"{SWITCHOVER_ANNOTATION}={REQUEST}")
    requested = until(lambda: (c := condition(k, ns, "Switchover")).get("reason") == "Requested" and c,
                      what="the switchover seen as requested")
    assert requested["status"] == "Unknown"

    answer = {"request": REQUEST, "state": "Completed", "message": "shard 0 is served by wa-coreapp-x (epoch 3)",
              "at": "2026-11-24T12:00:01.000000Z"}
    k("apply", "-f", "-", input=json.dumps({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "wa-master", "namespace": ns,
                     "labels": {**selector("wa", Role.MASTER), Label.MANAGED_BY: MANAGED_BY},
                     "annotations": {SWITCHOVER_STATUS_ANNOTATION: json.dumps(answer)}},
        "spec": {"holderIdentity": "wa-master-0", "leaseDurationSeconds": 15}}))
    done = until(lambda: (c := condition(k, ns, "Switchover")).get("status") == "True" and c, what="Switchover True")
    assert done["reason"] == "Completed" and "served by wa-coreapp-x" in done["message"]
    until(lambda: "SwitchoverCompleted" in event_reasons(k, ns), what="a SwitchoverCompleted event")

    k("annotate", "wac", "wa", "-n", ns, f"{FENCED_ANNOTATION}-")
    until(lambda: condition(k, ns, "Fenced").get("reason") == "NoneFenced", what="Fenced cleared")
    until(lambda: "NoneFenced" in event_reasons(k, ns), what="a NoneFenced event")
