"""`kubectl wac status <cluster>`: one screen that answers "is it healthy, who leads, who serves
each shard, what is waiting" from the WhatsAppCluster, the master Lease (its shard map, live
details and switchover answer) and the pods. Reading only; `render` is a pure function."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from wacluster.api.interprocess import (FENCED_ANNOTATION, SHARD_DETAILS_ANNOTATION, SHARD_MAP_ANNOTATION,
                                        SWITCHOVER_ANNOTATION, SWITCHOVER_STATUS_ANNOTATION, Label, label_selector)
from wacluster.api.v1alpha1 import GROUP, PLURAL, VERSION
from wacluster.domain.maintenance import parse_fenced, parse_time
from wacluster.kube.connection import api_client
from wacluster.resources.naming import Names


async def run(args: argparse.Namespace) -> int:
    api = await api_client()
    try:
        cluster, lease, pods = await collect(api, args.cluster, args.namespace)
    finally:
        await api.close()
    if cluster is None:
        print(f"error: no WhatsAppCluster {args.namespace}/{args.cluster}")
        return 1
    print(render(cluster, lease, pods, dt.datetime.now(dt.timezone.utc)))
    return 0


async def collect(api: client.ApiClient, name: str, namespace: str) -> tuple[dict | None, dict | None, list[dict]]:
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    try:
        cluster = await custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as exc:
        if exc.status == 404:
            return None, None, []
        raise
    try:
        lease = api.sanitize_for_serialization(
            await client.CoordinationV1Api(api).read_namespaced_lease(Names(name).master_lease, namespace))
    except ApiException as exc:
        if exc.status != 404:
            raise
        lease = None
    pods = (await core.list_namespaced_pod(namespace, label_selector=label_selector({Label.CLUSTER: name}))).items
    return cluster, lease, [api.sanitize_for_serialization(p) for p in pods]


def render(cluster: dict[str, Any], lease: dict[str, Any] | None, pods: list[dict[str, Any]], now: dt.datetime) -> str:
    meta, st = cluster["metadata"], cluster.get("status") or {}
    annotations = meta.get("annotations") or {}
    lease_meta = (lease or {}).get("metadata") or {}
    lease_annotations = lease_meta.get("annotations") or {}
    details = _json(lease_annotations.get(SHARD_DETAILS_ANNOTATION)) or {}
    out = [f"WhatsAppCluster {meta['namespace']}/{meta['name']}: phase {st.get('phase', 'Unknown')}, "
           f"version {st.get('version', '?')}, generation {meta.get('generation')} "
           f"(observed {st.get('observedGeneration', '?')})", "", "Conditions:"]
    for cond in st.get("conditions") or []:
        out.append(f"  {cond.get('type', ''):<14} {cond.get('status', ''):<6} {cond.get('reason', ''):<22} "
                   f"{cond.get('message', '')}")
    out += ["", _primary(lease, details, now), "", "Shards:",
            f"  {'SHARD':<6}{'OWNER':<34}{'EPOCH':<7}{'LEASE LEFT*':<12}{'PENDING':<9}SINCE"]
    by_shard = {s["shard"]: s for s in details.get("shards") or []}
    for shard in _json(lease_annotations.get(SHARD_MAP_ANNOTATION)) or st.get("shards") or []:
        live = by_shard.get(shard["shard"], {})
        out.append(f"  {shard['shard']:<6}{shard.get('coreapp') or '(none)':<34}{shard.get('epoch', ''):<7}"
                   f"{_lease_left(live, details.get('at')):<12}{live.get('pending', '?')!s:<9}{shard.get('since', '')}")
    out += ["  * left on the shard lease at the master's last snapshot (see its age below)", "",
            _nodes(pods, details, now)]
    fenced = parse_fenced(annotations.get(FENCED_ANNOTATION))
    out.append(f"Fenced: {', '.join(sorted(fenced)) if fenced else 'none'}")
    out.append(_switchover(annotations.get(SWITCHOVER_ANNOTATION), _json(lease_annotations.get(SWITCHOVER_STATUS_ANNOTATION))))
    return "\n".join(out)


def _primary(lease: dict | None, details: dict, now: dt.datetime) -> str:
    if lease is None:
        return "Primary master: none (no master Lease yet)"
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or "none"
    renewed = spec.get("renewTime")
    ago = f", renewed {_seconds(now - parse_time(renewed))} ago" if renewed else ""
    term = details.get("term", "?")
    return f"Primary master: {holder} (term {term}, {spec.get('leaseTransitions', 0)} Lease transitions{ago})"


def _lease_left(live: dict, at: str | None) -> str:
    """Left on the shard lease when the master took its snapshot (renewals every third of the
    lease keep it from running out; the snapshot's age is shown with the nodes)."""
    if not live.get("leaseUntil") or not at:
        return "?"
    if live.get("revoked"):
        return "revoked"
    left = (parse_time(live["leaseUntil"]) - parse_time(at)).total_seconds()
    return "expired" if left <= 0 else f"{left:.1f}s"


def _nodes(pods: list[dict], details: dict, now: dt.datetime) -> str:
    nodes = {n["name"]: n for n in details.get("nodes") or []}
    age = ""
    if details.get("at"):
        age = f" (database view {_seconds(now - parse_time(details['at']))} old)"
    lines = [f"Nodes{age}:", f"  {'POD':<34}{'ROLE':<10}{'READY':<7}{'RESTARTS':<10}{'GATEWAY':<14}{'DB HEARTBEAT':<14}NOTE"]
    for pod in sorted(pods, key=lambda p: ((p["metadata"].get("labels") or {}).get(Label.COMPONENT, ""),
                                           p["metadata"]["name"])):
        name = pod["metadata"]["name"]
        role = (pod["metadata"].get("labels") or {}).get(Label.COMPONENT, "?")
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        ready = f"{sum(bool(s.get('ready')) for s in statuses)}/{len(pod['spec']['containers'])}"
        restarts = sum(s.get("restartCount", 0) for s in statuses)
        node = nodes.pop(name, {})
        note = node.get("error") or ("stopping" if node.get("stopping") else "")
        if pod["metadata"].get("deletionTimestamp"):
            note = "terminating"
        heartbeat = f"{node['dbHeartbeatAge']}s ago" if "dbHeartbeatAge" in node else "-"
        lines.append(f"  {name:<34}{role:<10}{ready:<7}{restarts!s:<10}{node.get('gateway') or '-':<14}"
                     f"{heartbeat:<14}{note}")
    for name, node in sorted(nodes.items()):  # registered in the database without a pod here
        lines.append(f"  {name:<34}{node.get('role', '?'):<10}{'-':<7}{'-':<10}{node.get('gateway') or '-':<14}"
                     f"{str(node.get('dbHeartbeatAge', '-')) + 's ago':<14}no pod")
    return "\n".join(lines)


def _switchover(request: str | None, answer: dict | None) -> str:
    if not request:
        return "Switchover: none requested"
    if not answer or answer.get("request") != request:
        return f"Switchover: requested {request}; no answer from the primary master yet"
    return f"Switchover: {answer.get('state')}: {answer.get('message')} (request {request})"


def _seconds(delta: dt.timedelta) -> str:
    return f"{max(delta.total_seconds(), 0):.1f}s"


def _json(text: str | None):
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None
