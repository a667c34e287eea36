"""The WhatsAppCluster's annotations as the master sees them: kept current by a watch of the one
object, so a maintenance request (fence, switchover) reaches the primary master in one API round
trip without a poll per decision cycle."""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from wacluster.api.v1alpha1 import GROUP, PLURAL, VERSION

log = logging.getLogger("wacluster.master")

RETRY_AFTER = 1.0       # a broken watch is opened again after this pause
FORBIDDEN_RETRY = 30.0  # RBAC without read access to the cluster object: said once, retried slowly


class ClusterAnnotations:
    def __init__(self, api: client.ApiClient, namespace: str, name: str, on_change: Callable[[], None]) -> None:
        self.objects = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.name = name
        self.on_change = on_change
        self.annotations: dict[str, str] = {}
        self.problem: str | None = "not read yet"

    async def run(self) -> None:
        """Until cancelled: read the object, then follow it. What the API server refuses is
        logged when it first happens; the last annotations seen stay in force meanwhile."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except ApiException as exc:
                problem = f"cannot read WhatsAppCluster {self.namespace}/{self.name}: {exc.status} {exc.reason}"
                if problem != self.problem:
                    log.warning("%s; maintenance requests (fence, switchover) are not seen until it can", problem)
                self.problem = problem
                await asyncio.sleep(FORBIDDEN_RETRY if exc.status in (401, 403) else RETRY_AFTER)
            except Exception as exc:  # the API server may be restarting
                log.debug("WhatsAppCluster watch broke (%s); re-opening", exc)
                await asyncio.sleep(RETRY_AFTER)

    async def _follow(self) -> None:
        listed = await self.objects.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, field_selector=f"metadata.name={self.name}")
        items = listed.get("items") or []
        self._seen(items[0] if items else None)
        self.problem = None
        version = listed["metadata"]["resourceVersion"]
        async with watch.Watch() as stream:
            async for event in stream.stream(self.objects.list_namespaced_custom_object, GROUP, VERSION,
                                             self.namespace, PLURAL, field_selector=f"metadata.name={self.name}",
                                             resource_version=version, timeout_seconds=300):
                if event["type"] == "ERROR":
                    return  # e.g. 410 Gone: list again
                self._seen(None if event["type"] == "DELETED" else event["object"])

    def _seen(self, body: dict | None) -> None:
        annotations = dict(((body or {}).get("metadata") or {}).get("annotations") or {})
        if annotations != self.annotations:
            self.annotations = annotations
            self.on_change()
