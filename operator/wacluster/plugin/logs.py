"""`kubectl wac logs <cluster>`: every pod's logs (or one role's), each line prefixed with its pod,
in one stream: what `kubectl logs -l` gives, with the cluster's labels already chosen."""

from __future__ import annotations

import argparse

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from wacluster.api.interprocess import Label, label_selector
from wacluster.kube.connection import api_client


async def run(args: argparse.Namespace) -> int:
    labels = {Label.CLUSTER: args.cluster}
    if args.role:
        labels[Label.COMPONENT] = args.role
    api = await api_client()
    try:
        core = client.CoreV1Api(api)
        pods = (await core.list_namespaced_pod(args.namespace, label_selector=label_selector(labels))).items
        if not pods:
            print(f"no pods of cluster {args.namespace}/{args.cluster}" + (f" with role {args.role}" if args.role else ""))
            return 1
        for pod in sorted(pods, key=lambda p: p.metadata.name):
            for container in pod.spec.containers:
                prefix = f"[{pod.metadata.name}/{container.name}]"
                try:
                    text = await core.read_namespaced_pod_log(pod.metadata.name, args.namespace,
                                                              container=container.name, tail_lines=args.tail)
                except ApiException as exc:  # a pod not started yet has no log: say so, keep going
                    print(f"{prefix} (no log: {exc.status} {exc.reason})")
                    continue
                for line in text.splitlines():
                    print(f"{prefix} {line}")
        return 0
    finally:
        await api.close()
