"""`kubectl wac switchover|fence|unfence`: write the maintenance annotation on the WhatsAppCluster,
then follow the primary master's answer on its Lease and say what happens, line by line."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import time

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from wacluster.api.interprocess import (FENCED_ANNOTATION, SHARD_MAP_ANNOTATION, SWITCHOVER_ANNOTATION,
                                        SWITCHOVER_STATUS_ANNOTATION)
from wacluster.api.v1alpha1 import GROUP, PLURAL, VERSION
from wacluster.domain.maintenance import format_fenced, parse_fenced, switchover_request
from wacluster.kube.connection import api_client
from wacluster.resources.naming import Names

POLL = 0.2  # the plugin polls the Lease; the master's answer rides on its renewals


class Refused(Exception):
    """The request cannot be carried out; the message says why."""


async def switchover(args: argparse.Namespace) -> int:
    request = switchover_request(args.shard, args.to, dt.datetime.now(dt.timezone.utc))
    api = await api_client()
    try:
        await _patch_annotations(api, args.cluster, args.namespace, {SWITCHOVER_ANNOTATION: request})
        print(f"requested: {request}")
        if args.timeout <= 0:
            return 0
        said = None
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            answer = (await _lease_annotations(api, args.cluster, args.namespace)).get(SWITCHOVER_STATUS_ANNOTATION)
            answer = json.loads(answer) if answer else {}
            if answer.get("request") == request and (answer["state"], answer["message"]) != said:
                said = (answer["state"], answer["message"])
                print(f"{answer['state']}: {answer['message']}", flush=True)
                if answer["state"] == "Completed":
                    return 0
                if answer["state"] == "Refused":
                    raise Refused(f"switchover refused: {answer['message']}")
                # Waiting: judged again at every decision until it can go ahead or its window ends.
            await asyncio.sleep(POLL)
        raise Refused(f"no completed switchover within {args.timeout:g}s; the request stays on the cluster "
                      f"({SWITCHOVER_ANNOTATION}); see `kubectl wac status {args.cluster}`")
    finally:
        await api.close()


async def fence(args: argparse.Namespace) -> int:
    api = await api_client()
    try:
        await _update_fenced(api, args.cluster, args.namespace, lambda names: names | {args.coreapp})
        print(f"fenced {args.coreapp}: it is never promoted; a shard it owns is handed off")
        if args.timeout <= 0:
            return 0
        deadline = time.monotonic() + args.timeout
        said = False
        while time.monotonic() < deadline:
            owned = [s["shard"] for s in await _shard_map(api, args.cluster, args.namespace)
                     if s.get("coreapp") == args.coreapp]
            if not owned:
                print(f"{args.coreapp} owns no shard")
                return 0
            if not said:
                print(f"waiting for {args.coreapp} to hand off shard(s) {', '.join(map(str, owned))}", flush=True)
                said = True
            await asyncio.sleep(POLL)
        raise Refused(f"{args.coreapp} still owns a shard after {args.timeout:g}s (a fenced owner keeps its "
                      f"shard while no standby can take it); see `kubectl wac status {args.cluster}`")
    finally:
        await api.close()


async def unfence(args: argparse.Namespace) -> int:
    api = await api_client()
    try:
        await _update_fenced(api, args.cluster, args.namespace, lambda names: names - {args.coreapp})
        print(f"unfenced {args.coreapp}: it may be promoted again")
        return 0
    finally:
        await api.close()


async def _update_fenced(api: client.ApiClient, cluster: str, namespace: str, change) -> None:
    """Read, change, write under the object's resourceVersion: a concurrent edit of the list is
    retried, never overwritten."""
    custom = client.CustomObjectsApi(api)
    for _ in range(5):
        body = await _get(custom, cluster, namespace)
        current = (body["metadata"].get("annotations") or {}).get(FENCED_ANNOTATION)
        wanted = format_fenced(change(parse_fenced(current)))
        try:
            await custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, cluster,
                {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"],
                              "annotations": {FENCED_ANNOTATION: wanted or None}}},
                _content_type="application/merge-patch+json")
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
    raise Refused(f"the {FENCED_ANNOTATION} annotation kept changing under us; try again")


async def _patch_annotations(api: client.ApiClient, cluster: str, namespace: str, annotations: dict) -> None:
    custom = client.CustomObjectsApi(api)
    await _get(custom, cluster, namespace)
    await custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, cluster,
                                                {"metadata": {"annotations": annotations}},
                                                _content_type="application/merge-patch+json")


async def _get(custom: client.CustomObjectsApi, cluster: str, namespace: str) -> dict:
    try:
        return await custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, cluster)
    except ApiException as exc:
        if exc.status == 404:
            raise Refused(f"no WhatsAppCluster {namespace}/{cluster}") from None
        raise


async def _lease_annotations(api: client.ApiClient, cluster: str, namespace: str) -> dict[str, str]:
    try:
        lease = await client.CoordinationV1Api(api).read_namespaced_lease(Names(cluster).master_lease, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return {}
        raise
    return lease.metadata.annotations or {}


async def _shard_map(api: client.ApiClient, cluster: str, namespace: str) -> list[dict]:
    text = (await _lease_annotations(api, cluster, namespace)).get(SHARD_MAP_ANNOTATION)
    return json.loads(text) if text else []
