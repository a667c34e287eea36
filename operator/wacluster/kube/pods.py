"""What Kubernetes says about a cluster's coreapp pods: a terminating or deleted pod is gone."""

from __future__ import annotations

from kubernetes_asyncio import client

from wacluster.api.interprocess import Role, label_selector, selector


async def coreapp_pods(api: client.ApiClient, namespace: str, cluster: str) -> tuple[set[str], set[str]]:
    """(names of the cluster's coreapp pods, the subset being deleted)."""
    pods = await client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=label_selector(selector(cluster, Role.COREAPP)))
    names = {p.metadata.name for p in pods.items}
    terminating = {p.metadata.name for p in pods.items if p.metadata.deletion_timestamp}
    return names, terminating
