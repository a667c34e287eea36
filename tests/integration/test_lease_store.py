"""The election's lock store on a real Lease: a write carries the version it read, so it lands
only on the very Lease object that was read, never on one deleted meanwhile or created again."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from kubernetes_asyncio import client

from wacluster.domain.election import LockConflict, LockRecord
from wacluster.kube.lease import KubeLeaseStore

pytestmark = pytest.mark.integration


async def _held_by(store: KubeLeaseStore, holder: str) -> LockRecord:
    now = time.time()
    return await store.create(LockRecord(holder, 15, 1, now, now))


async def test_a_write_under_the_version_of_a_deleted_lease_does_not_create_it_again(kube_api, namespace):
    store = KubeLeaseStore(kube_api, namespace, "deleted")
    seen = await _held_by(store, "a")
    await client.CoordinationV1Api(kube_api).delete_namespaced_lease("deleted", namespace)
    with pytest.raises(LockConflict):
        await store.update(replace(seen, transitions=5))
    assert await store.get() is None


async def test_a_write_under_the_version_of_a_lease_created_again_conflicts(kube_api, namespace):
    store = KubeLeaseStore(kube_api, namespace, "recreated")
    seen = await _held_by(store, "a")
    await client.CoordinationV1Api(kube_api).delete_namespaced_lease("recreated", namespace)
    await _held_by(KubeLeaseStore(kube_api, namespace, "recreated"), "b")
    with pytest.raises(LockConflict):
        await store.update(replace(seen, transitions=5))
    assert (await store.get()).holder == "b"


async def test_the_holder_renews_the_lease_it_read(kube_api, namespace):
    store = KubeLeaseStore(kube_api, namespace, "renewed")
    seen = await _held_by(store, "a")
    renewed = await store.update(replace(seen, transitions=5, renew_time=time.time()))
    assert renewed.holder == "a" and renewed.transitions == 5 and renewed.version != seen.version
    assert await store.get() == renewed
