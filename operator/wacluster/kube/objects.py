"""Generic object access: server-side apply, create-if-absent, read, list and delete by kind."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.dynamic import DynamicClient

FIELD_MANAGER = "wacluster-operator"


def owner_reference(api_version: str, kind: str, name: str, uid: str) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
            "controller": True, "blockOwnerDeletion": True}


def _checked(result: Any) -> dict[str, Any]:
    """The dynamic client returns failures as Status objects; turn them into ApiException."""
    body = result.to_dict() if hasattr(result, "to_dict") else result
    if isinstance(body, dict) and body.get("kind") == "Status" and body.get("status") == "Failure":
        exc = ApiException(status=body.get("code", 500), reason=body.get("reason", "Failure"))
        exc.body = json.dumps(body)
        raise exc
    return body


class Objects:
    """A thin layer over the dynamic client; every write is idempotent."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._dynamic: DynamicClient | None = None

    async def _client(self) -> DynamicClient:
        if self._dynamic is None:
            self._dynamic = await DynamicClient(self.api)
        return self._dynamic

    async def _resource(self, api_version: str, kind: str):
        return await (await self._client()).resources.get(api_version=api_version, kind=kind)

    async def apply(self, obj: dict[str, Any], namespace: str,
                    owner: dict[str, Any] | None = None) -> dict[str, Any]:
        """Server-side apply: fields we set are restored if edited; fields others own stay."""
        body = copy.deepcopy(obj)
        body.setdefault("metadata", {})["namespace"] = namespace
        if owner:
            body["metadata"]["ownerReferences"] = [owner]
        resource = await self._resource(body["apiVersion"], body["kind"])
        return _checked(await (await self._client()).server_side_apply(
            resource, body=body, namespace=namespace, field_manager=FIELD_MANAGER, force_conflicts=True))

    async def create_if_absent(self, obj: dict[str, Any], namespace: str,
                               owner: dict[str, Any] | None = None) -> bool:
        """Create unless an object of that name exists; returns True when created."""
        body = copy.deepcopy(obj)
        body.setdefault("metadata", {})["namespace"] = namespace
        if owner:
            body["metadata"]["ownerReferences"] = [owner]
        resource = await self._resource(body["apiVersion"], body["kind"])
        try:
            _checked(await (await self._client()).create(resource, body=body, namespace=namespace))
            return True
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise

    async def rejection_as_new(self, obj: dict[str, Any], namespace: str) -> ApiException | None:
        """The API server's verdict on `obj` alone, as a new object (a dry-run create under a
        generated name, so no live object and no other field manager takes part): the 422 it
        would give, or None when it would accept it."""
        body = copy.deepcopy(obj)
        meta = body.setdefault("metadata", {})
        meta["generateName"] = meta.pop("name", "x")[:50] + "-"
        meta["namespace"] = namespace
        resource = await self._resource(body["apiVersion"], body["kind"])
        try:
            _checked(await (await self._client()).create(resource, body=body, namespace=namespace, dry_run="All"))
        except ApiException as exc:
            if exc.status == 422:
                return exc
            raise
        return None

    async def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        resource = await self._resource(api_version, kind)
        try:
            return _checked(await (await self._client()).get(resource, name=name, namespace=namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, api_version: str, kind: str, namespace: str, labels: dict[str, str]) -> list[dict[str, Any]]:
        resource = await self._resource(api_version, kind)
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        result = _checked(await (await self._client()).get(resource, namespace=namespace, label_selector=selector))
        return result.get("items", [])

    async def delete(self, api_version: str, kind: str, name: str, namespace: str,
                     propagation: str = "Background") -> bool:
        resource = await self._resource(api_version, kind)
        try:
            _checked(await (await self._client()).delete(resource, name=name, namespace=namespace,
                                                         propagation_policy=propagation))
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    async def wait_deleted(self, api_version: str, kind: str, name: str, namespace: str,
                           timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while await self.get(api_version, kind, name, namespace) is not None:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{kind} {namespace}/{name} still exists after {timeout:.0f}s")
            await asyncio.sleep(0.2)

    async def patch_status(self, api_version: str, kind: str, name: str, namespace: str,
                           status: dict[str, Any]) -> None:
        resource = await self._resource(api_version, kind)
        _checked(await (await self._client()).patch(
            resource.subresources["status"], name=name, namespace=namespace,
            body={"status": status}, content_type="application/merge-patch+json"))

    async def post_event(self, regarding: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event about `regarding` (what `kubectl describe` and `get events` show)."""
        meta = regarding["metadata"]
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": regarding["apiVersion"], "kind": regarding["kind"],
                               "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
            "type": type_, "reason": reason, "message": message[:1024],
            "source": {"component": FIELD_MANAGER},
            "firstTimestamp": now[:19] + "Z", "lastTimestamp": now[:19] + "Z", "count": 1,
            "reportingComponent": FIELD_MANAGER, "reportingInstance": FIELD_MANAGER,
        }
        resource = await self._resource("v1", "Event")
        _checked(await (await self._client()).create(resource, body=event, namespace=meta["namespace"]))
