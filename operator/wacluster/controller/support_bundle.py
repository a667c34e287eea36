"""`wacluster support-bundle <cluster>`: everything support asks for, in one file (the seeds'
`docker-compose logs > debug_output.txt`): the WhatsAppCluster, its events, the master Lease,
every pod and the logs of every role, and the API's health output."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from wacluster.api.interprocess import Label, PortName, label_selector
from wacluster.api.v1alpha1 import GROUP, PLURAL, VERSION
from wacluster.kube.connection import api_client
from wacluster.resources.naming import Names


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("support-bundle", help="collect the CR, events, logs and health of a cluster into one file")
    parser.add_argument("cluster", help="name of the WhatsAppCluster")
    parser.add_argument("--namespace", "-n", default="default")
    parser.add_argument("--output", "-o", type=Path, help="file to write (default: <cluster>-support-<time>.txt)")
    parser.add_argument("--tail", type=int, default=2000, help="log lines per container")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    output = args.output or Path(f"{args.cluster}-support-{time.strftime('%Y%m%d-%H%M%S')}.txt")
    sections = asyncio.run(collect(args.cluster, args.namespace, args.tail))
    with open(output, "w") as out:
        for title, body in sections:
            out.write(f"===== {title} =====\n{body.rstrip()}\n\n")
    print(f"wrote {output} ({output.stat().st_size} bytes, {len(sections)} sections)")
    return 0


def _step(message: str) -> None:
    print(f"[support-bundle] {message}", flush=True)


def _dump(obj: Any) -> str:
    if hasattr(obj, "to_dict"):
        obj = client.ApiClient().sanitize_for_serialization(obj)
    return yaml.safe_dump(obj, sort_keys=False)


async def collect(cluster: str, namespace: str, tail: int) -> list[tuple[str, str]]:
    sections: list[tuple[str, str]] = []
    names = Names(cluster)
    api = await api_client()
    try:
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        coordination = client.CoordinationV1Api(api)

        async def section(title: str, produce) -> None:
            _step(title)
            try:
                sections.append((title, await produce()))
            except ApiException as exc:
                sections.append((title, f"unavailable: {exc.status} {exc.reason}"))
            except Exception as exc:  # a bundle is collected when things are broken: keep going
                sections.append((title, f"unavailable: {exc}"))

        await section(f"WhatsAppCluster {namespace}/{cluster}", lambda: _cr(custom, cluster, namespace))
        await section("events", lambda: _events(core, cluster, namespace))
        await section(f"Lease {names.master_lease}",
                      lambda: _as_yaml(coordination.read_namespaced_lease(names.master_lease, namespace)))
        pods = (await core.list_namespaced_pod(namespace, label_selector=label_selector({Label.CLUSTER: cluster}))).items
        await section("pods", lambda: _pod_table(pods))
        for pod in pods:
            for container in pod.spec.containers:
                await section(f"logs {pod.metadata.name}/{container.name}",
                              lambda p=pod, c=container: core.read_namespaced_pod_log(
                                  p.metadata.name, namespace, container=c.name, tail_lines=tail))
        await section("GET /v1/health", lambda: _health(api, core, names, namespace))
    finally:
        await api.close()
    return sections


async def _as_yaml(awaitable) -> str:
    return _dump(await awaitable)


async def _cr(custom: client.CustomObjectsApi, cluster: str, namespace: str) -> str:
    return _dump(await custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, cluster))


async def _events(core: client.CoreV1Api, cluster: str, namespace: str) -> str:
    events = (await core.list_namespaced_event(namespace)).items
    related = [e for e in events if (e.involved_object.name or "").startswith(cluster)]
    related.sort(key=lambda e: str(e.last_timestamp or e.event_time or ""))
    return "\n".join(f"{e.last_timestamp or e.event_time} {e.type} {e.reason} "
                     f"{e.involved_object.kind}/{e.involved_object.name}: {e.message}" for e in related) or "none"


async def _pod_table(pods) -> str:
    lines = []
    for pod in pods:
        ready = sum(1 for s in pod.status.container_statuses or [] if s.ready)
        restarts = sum(s.restart_count for s in pod.status.container_statuses or [])
        lines.append(f"{pod.metadata.name:<45} {pod.status.phase:<10} ready={ready} restarts={restarts} "
                     f"node={pod.spec.node_name}")
    return "\n".join(lines) or "no pods"


async def _health(api: client.ApiClient, core: client.CoreV1Api, names: Names, namespace: str) -> str:
    """Log in and ask for health through the API server's service proxy (no port-forward needed)."""
    secret = await core.read_namespaced_secret(names.admin_secret, namespace)
    user = base64.b64decode(secret.data["username"]).decode()
    password = base64.b64decode(secret.data["password"]).decode()
    # By port name: the Service's port number is the cluster's spec.api.port.
    base = f"/api/v1/namespaces/{namespace}/services/https:{names.api_service}:{PortName.API}/proxy"
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    login = await api.call_api(f"{base}/v1/users/login", "POST", header_params={"Authorization": f"Basic {basic}"},
                               auth_settings=["BearerToken"], _preload_content=False)
    token = json.loads(await login.read())["users"][0]["token"]
    health = await api.call_api(f"{base}/v1/health", "GET", header_params={"Authorization": f"Bearer {token}"},
                                auth_settings=["BearerToken"], _preload_content=False)
    return json.dumps(json.loads(await health.read()), indent=2)
