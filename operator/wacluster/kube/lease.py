"""The election's lock store on a `coordination.k8s.io/v1` Lease, guarded by resourceVersion."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Awaitable, Callable

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from wacluster.domain.election import LeaderElector, LockConflict, LockRecord, LockStore

log = logging.getLogger("wacluster.election")


def _to_time(value: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value, dt.timezone.utc) if value is not None else None


def _from_time(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.timestamp()


_UID_SEPARATOR = "/"  # neither a uid nor a resourceVersion contains it


class KubeLeaseStore(LockStore):
    def __init__(self, api: client.ApiClient, namespace: str, name: str,
                 labels: dict[str, str] | None = None) -> None:
        self.leases = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.labels = labels or {}
        # Carried on every write (a PUT replaces metadata); set `annotations[...]` to publish.
        self.annotations: dict[str, str] = {}

    @staticmethod
    def _record(lease: client.V1Lease) -> LockRecord:
        spec = lease.spec
        return LockRecord(
            holder=spec.holder_identity or None,
            duration=float(spec.lease_duration_seconds or 0),
            transitions=spec.lease_transitions or 0,
            acquire_time=_from_time(spec.acquire_time),
            renew_time=_from_time(spec.renew_time),
            version=f"{lease.metadata.uid}{_UID_SEPARATOR}{lease.metadata.resource_version}",
        )

    def _body(self, record: LockRecord) -> client.V1Lease:
        # The version is the object's uid and resourceVersion. Both go into the PUT: a Lease
        # allows create-on-update, so a write under the resourceVersion alone to a Lease deleted
        # meanwhile would create it again; with the uid it is a conflict, as for one created again.
        uid, resource_version = record.version.split(_UID_SEPARATOR) if record.version else (None, None)
        return client.V1Lease(
            metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace,
                                         labels=self.labels or None, annotations=self.annotations or None,
                                         uid=uid, resource_version=resource_version),
            spec=client.V1LeaseSpec(
                holder_identity=record.holder or "",
                # A released lease expires at once for everyone who looks at it.
                lease_duration_seconds=max(1, round(record.duration)) if record.holder else 1,
                lease_transitions=record.transitions,
                acquire_time=_to_time(record.acquire_time),
                renew_time=_to_time(record.renew_time),
            ),
        )

    async def get(self) -> LockRecord | None:
        try:
            return self._record(await self.leases.read_namespaced_lease(self.name, self.namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, record: LockRecord) -> LockRecord:
        try:
            lease = await self.leases.create_namespaced_lease(self.namespace, self._body(record))
        except ApiException as exc:
            if exc.status == 409:
                raise LockConflict(self.name) from exc
            raise
        return self._record(lease)

    async def update(self, record: LockRecord) -> LockRecord:
        try:
            lease = await self.leases.replace_namespaced_lease(self.name, self.namespace, self._body(record))
        except ApiException as exc:
            if exc.status == 409:
                raise LockConflict(self.name) from exc
            raise
        return self._record(lease)

    async def watch_releases(self, on_released: Callable[[], None]) -> None:
        """Call `on_released` whenever the Lease is seen without a holder (given up or new).

        A standby otherwise notices a release only at its next retry-period poll; watching
        makes a planned handover take one API round trip. Runs until cancelled; a broken
        watch is re-opened after a short pause (polling still covers the gap).
        """
        while True:
            try:
                async with watch.Watch() as stream:
                    async for event in stream.stream(self.leases.list_namespaced_lease, self.namespace,
                                                     field_selector=f"metadata.name={self.name}",
                                                     timeout_seconds=300):
                        lease = event["object"]
                        if event["type"] in ("ADDED", "MODIFIED") and not lease.spec.holder_identity:
                            on_released()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the API server may be restarting
                log.debug("Lease watch broke (%s); re-opening", exc)
                await asyncio.sleep(1.0)


async def campaign(elector: LeaderElector, store: KubeLeaseStore,
                   on_started_leading: Callable[[int], Awaitable[None]],
                   on_stopped_leading: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
    """Run `elector` on `store`, woken by the Lease watch so a released Lease is taken at once."""
    released = asyncio.Event()
    watcher = asyncio.create_task(store.watch_releases(released.set), name="lease-watch")
    try:
        await elector.run(on_started_leading, on_stopped_leading, stop, wake=released)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
