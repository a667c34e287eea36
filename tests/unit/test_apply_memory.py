"""When the operator applies an owned object again, and when it leaves it alone."""

from __future__ import annotations

import pytest

from wacluster.domain.apply_memory import (
    APPLIED_HASH_ANNOTATION, REFRESH_SECONDS, ApplyMemory, desired_hash, object_key, others_changes)

pytestmark = pytest.mark.unit

MANAGER = "wacluster-operator"
OWNER = {"apiVersion": "wacluster.io/v1alpha1", "kind": "WhatsAppCluster", "name": "wa", "uid": "u-1"}


def deployment(replicas: int = 2) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "wa-master", "labels": {"app.kubernetes.io/instance": "wa"}},
            "spec": {"replicas": replicas}}


def live(digest: str, *others: dict, our_time: str = "2026-11-24T12:00:00Z") -> dict:
    """The object as the API server shows it: our Apply entry, then `others`."""
    ours = {"manager": MANAGER, "operation": "Apply", "time": our_time,
            "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "wa-master", "namespace": "ns", "annotations": {APPLIED_HASH_ANNOTATION: digest},
                         "managedFields": [ours, *others]},
            "spec": {"replicas": 2}}


def edit(manager: str, time: str, subresource: str | None = None, field: str = "f:replicas") -> dict:
    entry = {"manager": manager, "operation": "Update", "time": time, "fieldsV1": {"f:spec": {field: {}}}}
    if subresource:
        entry["subresource"] = subresource
    return entry


KEY = object_key({**deployment(), "metadata": {**deployment()["metadata"], "namespace": "ns"}})
DIGEST = desired_hash(deployment(), "ns", OWNER)


def applied_memory() -> ApplyMemory:
    memory = ApplyMemory(MANAGER)
    memory.applied(KEY, DIGEST, live(DIGEST), now=0.0)
    return memory


def test_an_object_never_applied_by_this_process_is_applied():
    assert ApplyMemory(MANAGER).reason(KEY, DIGEST, now=0.0) == "never-applied"


def test_an_unchanged_desired_object_with_no_edit_since_is_skipped():
    memory = applied_memory()
    memory.seen(KEY, live(DIGEST), now=1.0)  # our own apply's watch event
    assert memory.reason(KEY, DIGEST, now=2.0) is None


def test_a_changed_desired_object_is_applied():
    memory = applied_memory()
    changed = desired_hash(deployment(replicas=3), "ns", OWNER)
    assert changed != DIGEST
    assert memory.reason(KEY, changed, now=1.0) == "desired-changed"


def test_a_new_owner_changes_the_desired_hash():
    assert desired_hash(deployment(), "ns", {**OWNER, "uid": "u-2"}) != DIGEST


def test_an_edit_by_another_field_manager_seen_by_the_watch_is_applied_over():
    memory = applied_memory()
    memory.seen(KEY, live(DIGEST, edit("kubectl", "2026-11-24T12:05:00Z", subresource="scale")), now=1.0)
    assert memory.reason(KEY, DIGEST, now=2.0) == "changed-by-others"


def test_the_apply_over_an_edit_settles_it():
    memory = applied_memory()
    edited = live(DIGEST, edit("kubectl", "2026-11-24T12:05:00Z"))
    memory.seen(KEY, edited, now=1.0)
    # Our answer still lists kubectl (say, owning a field we never set): that is now the baseline.
    memory.applied(KEY, DIGEST, edited, now=2.0)
    memory.seen(KEY, edited, now=3.0)
    assert memory.reason(KEY, DIGEST, now=4.0) is None


def test_status_writes_by_controllers_are_not_edits():
    memory = applied_memory()
    memory.seen(KEY, live(DIGEST, edit("kube-controller-manager", "2026-11-24T12:05:00Z", subresource="status",
                                       field="f:readyReplicas")), now=1.0)
    assert memory.reason(KEY, DIGEST, now=2.0) is None


def test_a_deleted_object_is_applied_again():
    memory = applied_memory()
    memory.deleted(KEY)
    assert memory.reason(KEY, DIGEST, now=1.0) == "deleted"
    memory.applied(KEY, DIGEST, live(DIGEST), now=2.0)
    assert memory.reason(KEY, DIGEST, now=3.0) is None


def test_the_children_of_a_deleted_cluster_are_forgotten_not_marked():
    memory = applied_memory()
    memory.deleted(KEY, cluster_alive=False)
    assert memory.reason(KEY, DIGEST, now=1.0) == "never-applied"


def test_a_restarted_operator_applies_once_then_skips():
    memory = ApplyMemory(MANAGER)  # a fresh process: nothing known, nothing seen yet
    assert memory.reason(KEY, DIGEST, now=0.0) == "never-applied"
    memory.applied(KEY, DIGEST, live(DIGEST), now=1.0)
    assert memory.reason(KEY, DIGEST, now=2.0) is None


def test_a_restarted_operator_adopts_an_object_the_watch_shows_as_it_left_it():
    memory = ApplyMemory(MANAGER)
    memory.seen(KEY, live(DIGEST, edit("kube-controller-manager", "2026-11-24T12:05:00Z", subresource="status")),
                now=0.0)
    assert memory.reason(KEY, DIGEST, now=1.0) is None


def test_a_restarted_operator_applies_an_object_edited_after_its_last_apply():
    memory = ApplyMemory(MANAGER)
    memory.seen(KEY, live(DIGEST, edit("kubectl", "2026-11-24T12:00:00Z")), now=0.0)  # same second: unsure
    assert memory.reason(KEY, DIGEST, now=1.0) == "never-applied"


def test_a_restarted_operator_applies_an_object_another_operator_version_applied():
    memory = ApplyMemory(MANAGER)
    memory.seen(KEY, live("an-older-desired-object"), now=0.0)
    assert memory.reason(KEY, DIGEST, now=1.0) == "desired-changed"


def test_an_object_without_our_hash_is_not_adopted():
    memory = ApplyMemory(MANAGER)
    obj = live(DIGEST)
    del obj["metadata"]["annotations"]
    memory.seen(KEY, obj, now=0.0)
    assert memory.reason(KEY, DIGEST, now=1.0) == "never-applied"


def test_an_unchanged_object_is_applied_again_after_the_refresh_period():
    memory = applied_memory()
    assert memory.reason(KEY, DIGEST, now=REFRESH_SECONDS - 1) is None
    assert memory.reason(KEY, DIGEST, now=REFRESH_SECONDS) == "refresh"


def test_others_changes_ignore_our_own_entries_and_status_writes():
    obj = live(DIGEST, edit("kube-controller-manager", "t", subresource="status"), edit("kubectl", "t2"))
    assert [entry[0] for entry in others_changes(obj, MANAGER)] == ["kubectl"]


def test_prune_runs_again_only_when_the_desired_set_changes():
    memory = ApplyMemory(MANAGER)
    wanted = frozenset({("Deployment", "wa-master")})
    assert memory.prune_needed("ns", "wa", wanted)
    memory.pruned("ns", "wa", wanted)
    assert not memory.prune_needed("ns", "wa", wanted)
    assert memory.prune_needed("ns", "wa", wanted | {("Service", "wa-api")})
    memory.forget_cluster("ns", "wa")
    assert memory.prune_needed("ns", "wa", wanted)
