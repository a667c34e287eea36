"""Deployments, Services and PodDisruptionBudgets of the runtime roles."""

from __future__ import annotations

from typing import Any

from wacluster.resources.naming import (
    API_PORT, CONTROL_PORT, GATEWAY_PORT, METRICS_PORT, labels, selector,
)
from wacluster.resources.pods import ClusterView, runtime_container, runtime_pod


def _deployment(view: ClusterView, role: str, replicas: int, pod: dict[str, Any],
                strategy: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": view.names.role(role), "labels": labels(view.name, role, view.version)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(view.name, role)},
            "strategy": strategy,
            "revisionHistoryLimit": 3,
            "template": pod,
        },
    }


def master_deployment(view: ClusterView) -> dict[str, Any]:
    spec = view.spec.masters
    container = runtime_container(view, "master", ["master"],
                                  [{"name": "control", "containerPort": CONTROL_PORT}], spec.resources)
    pod = runtime_pod(view, "master", spec, container)
    # A terminating master releases its Lease; give it time to do so.
    pod["spec"]["terminationGracePeriodSeconds"] = 30
    return _deployment(view, "master", spec.replicas, pod,
                       {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})


def coreapp_deployment(view: ClusterView) -> dict[str, Any]:
    spec = view.spec.coreapps
    container = runtime_container(view, "coreapp", ["coreapp"],
                                  [{"name": "control", "containerPort": CONTROL_PORT}], spec.resources)
    pod = runtime_pod(view, "coreapp", spec, container)
    # Planned handoff on SIGTERM waits for the successor to connect; allow for it.
    pod["spec"]["terminationGracePeriodSeconds"] = 60
    # One coreapp at a time, new pod first: a shard always has a standby to move to.
    return _deployment(view, "coreapp", spec.replicas, pod,
                       {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})


def webapp_deployment(view: ClusterView) -> dict[str, Any]:
    spec = view.spec.webapps
    container = runtime_container(view, "webapp", ["webapp"],
                                  [{"name": "https", "containerPort": API_PORT}], spec.resources)
    container["volumeMounts"].append({"name": "tls", "mountPath": "/etc/wacluster-tls", "readOnly": True})
    container["env"] += [
        {"name": "WACLUSTER_TLS_DIR", "value": "/etc/wacluster-tls"},
        {"name": "WACLUSTER_ADMIN_SECRET", "value": view.spec.api.admin_secret_name or view.names.admin_secret},
        {"name": "WACLUSTER_ADMIN_USERNAME", "valueFrom": {"secretKeyRef": {
            "name": view.spec.api.admin_secret_name or view.names.admin_secret, "key": "username"}}},
        {"name": "WACLUSTER_ADMIN_PASSWORD", "valueFrom": {"secretKeyRef": {
            "name": view.spec.api.admin_secret_name or view.names.admin_secret, "key": "password"}}},
    ]
    tls = {"name": "tls", "secret": {"secretName": view.spec.api.tls_secret_name or view.names.tls_secret}}
    pod = runtime_pod(view, "webapp", spec, container, extra_volumes=[tls])
    return _deployment(view, "webapp", spec.replicas, pod,
                       {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})


def sandbox_deployment(view: ClusterView) -> dict[str, Any]:
    container = runtime_container(view, "sandbox", ["sandbox"],
                                  [{"name": "gateway", "containerPort": GATEWAY_PORT}], None)
    pod = runtime_pod(view, "sandbox", None, container)
    # One simulated server: its state is the one connection per shard it polices.
    return _deployment(view, "sandbox", 1, pod, {"type": "Recreate"})


def _service(view: ClusterView, name: str, role: str, ports: list[dict[str, Any]],
             headless: bool = False, service_type: str = "ClusterIP") -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": selector(view.name, role), "ports": ports, "type": service_type}
    if headless:
        spec["clusterIP"] = "None"
        # Masters heartbeat every coreapp, including ones not ready yet.
        spec["publishNotReadyAddresses"] = True
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": labels(view.name, role)}, "spec": spec}


def services(view: ClusterView) -> list[dict[str, Any]]:
    names = view.names
    metrics = {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"}
    out = [
        _service(view, names.api_service, "webapp",
                 [{"name": "https", "port": view.spec.api.port, "targetPort": "https"}, metrics],
                 service_type=view.spec.api.service_type),
        _service(view, names.role("master"), "master",
                 [{"name": "control", "port": CONTROL_PORT, "targetPort": "control"}, metrics], headless=True),
        _service(view, names.role("coreapp"), "coreapp",
                 [{"name": "control", "port": CONTROL_PORT, "targetPort": "control"}, metrics], headless=True),
    ]
    if view.spec.gateway.mode == "sandbox":
        out.append(_service(view, names.role("sandbox"), "sandbox",
                            [{"name": "gateway", "port": GATEWAY_PORT, "targetPort": "gateway"}, metrics]))
    return out


def disruption_budgets(view: ClusterView) -> list[dict[str, Any]]:
    """A node drain may take one master and one coreapp at a time, never all of them."""
    out = []
    for role, replicas in (("master", view.spec.masters.replicas), ("coreapp", view.spec.coreapps.replicas)):
        if replicas < 2:
            continue  # a budget over a single pod would block every drain
        out.append({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": view.names.role(role), "labels": labels(view.name, role)},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(view.name, role)}},
        })
    return out
