"""The election's lock store on a `coordination.k8s.io/v1` Lease, guarded by resourceVersion."""

from __future__ import annotations

import datetime as dt

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from wacluster.domain.election import LockConflict, LockRecord, LockStore


def _to_time(value: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value, dt.timezone.utc) if value is not None else None


def _from_time(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.timestamp()


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
            version=lease.metadata.resource_version,
        )

    def _body(self, record: LockRecord) -> client.V1Lease:
        return client.V1Lease(
            metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace,
                                         labels=self.labels or None, annotations=self.annotations or None,
                                         resource_version=record.version),
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
