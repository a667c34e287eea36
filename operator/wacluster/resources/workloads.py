"""Deployments, Services and PodDisruptionBudgets of the runtime roles."""

from __future__ import annotations

from typing import Any

from wacluster.api.interprocess import Env, Port, PortName, Role, selector
from wacluster.resources.naming import labels
from wacluster.resources.pods import (
    ClusterView, coreapp_gateway_env, internal_token_env, runtime_container, runtime_pod, webapp_gateway_env,
)


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
    # No control port: a master serves only metrics; it calls the coreapps, nothing calls it.
    container = runtime_container(view, Role.MASTER, [Role.MASTER], [], spec.resources)
    container["env"].append(internal_token_env(view))
    pod = runtime_pod(view, Role.MASTER, spec, container)
    # A terminating master releases its Lease; give it time to do so.
    pod["spec"]["terminationGracePeriodSeconds"] = 30
    return _deployment(view, Role.MASTER, spec.replicas, pod,
                       {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})


def coreapp_deployment(view: ClusterView) -> dict[str, Any]:
    spec = view.spec.coreapps
    container = runtime_container(view, Role.COREAPP, [Role.COREAPP],
                                  [{"name": PortName.CONTROL, "containerPort": Port.CONTROL}], spec.resources)
    container["env"] += [internal_token_env(view), *coreapp_gateway_env(view)]
    pod = runtime_pod(view, Role.COREAPP, spec, container)
    # Planned handoff on SIGTERM waits for the successor to connect; allow for it.
    pod["spec"]["terminationGracePeriodSeconds"] = 60
    # One coreapp at a time, new pod first: a shard always has a standby to move to.
    return _deployment(view, Role.COREAPP, spec.replicas, pod,
                       {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})


# Memory limit per webapp process with several workers (each measured at 125-145 MiB under load).
WEBAPP_PROCESS_MEMORY_MI = 192


def webapp_deployment(view: ClusterView) -> dict[str, Any]:
    spec = view.spec.webapps
    # The default (1) adds no argument: existing webapps' pods stay as they are.
    workers = ["--workers", str(spec.workers)] if spec.workers != 1 else []
    container = runtime_container(view, Role.WEBAPP, [Role.WEBAPP, *workers],
                                  [{"name": PortName.API, "containerPort": Port.API}], spec.resources)
    if spec.resources is None and spec.workers != 1:  # the default limit is one process's ("auto" has resources)
        defaults = container["resources"]
        container["resources"] = {**defaults, "limits": {**defaults["limits"],
                                                         "memory": f"{WEBAPP_PROCESS_MEMORY_MI * (spec.workers + 1)}Mi"}}
    container["volumeMounts"].append({"name": "tls", "mountPath": "/etc/wacluster-tls", "readOnly": True})
    admin_secret = view.spec.api.admin_secret_name or view.names.admin_secret
    container["env"] += [
        {"name": Env.TLS_DIR, "value": "/etc/wacluster-tls"},
        {"name": Env.ADMIN_USERNAME, "valueFrom": {"secretKeyRef": {"name": admin_secret, "key": "username"}}},
        {"name": Env.ADMIN_PASSWORD, "valueFrom": {"secretKeyRef": {"name": admin_secret, "key": "password"}}},
        {"name": Env.WEBHOOK_SIGNING_KEY,
         "valueFrom": {"secretKeyRef": {"name": view.names.webhook_signing_secret, "key": "key"}}},
        {"name": Env.WEBHOOK_ALLOWED_NETWORKS, "value": ",".join(view.spec.webhooks.allowed_networks)},
        internal_token_env(view),
        *webapp_gateway_env(view),
    ]
    tls = {"name": "tls", "secret": {"secretName": view.spec.api.tls_secret_name or view.names.tls_secret}}
    pod = runtime_pod(view, Role.WEBAPP, spec, container, extra_volumes=[tls])
    return _deployment(view, Role.WEBAPP, spec.replicas, pod,
                       {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})


def sandbox_deployment(view: ClusterView) -> dict[str, Any]:
    container = runtime_container(view, Role.SANDBOX, [Role.SANDBOX],
                                  [{"name": PortName.GATEWAY, "containerPort": Port.GATEWAY}], None)
    pod = runtime_pod(view, Role.SANDBOX, None, container)
    # One simulated server: its state is the one connection per shard it polices.
    return _deployment(view, Role.SANDBOX, 1, pod, {"type": "Recreate"})


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
    metrics = {"name": PortName.METRICS, "port": Port.METRICS, "targetPort": PortName.METRICS}
    control = {"name": PortName.CONTROL, "port": Port.CONTROL, "targetPort": PortName.CONTROL}
    out = [
        _service(view, names.api_service, Role.WEBAPP,
                 [{"name": PortName.API, "port": view.spec.api.port, "targetPort": PortName.API}, metrics],
                 service_type=view.spec.api.service_type),
        _service(view, names.role(Role.MASTER), Role.MASTER, [metrics], headless=True),
        _service(view, names.role(Role.COREAPP), Role.COREAPP, [control, metrics], headless=True),
    ]
    if view.spec.gateway.mode == "sandbox":
        out.append(_service(view, names.role(Role.SANDBOX), Role.SANDBOX,
                            [{"name": PortName.GATEWAY, "port": Port.GATEWAY, "targetPort": PortName.GATEWAY},
                             metrics]))
    return out


def disruption_budgets(view: ClusterView) -> list[dict[str, Any]]:
    """A node drain may take one master and one coreapp at a time, never all of them."""
    out = []
    for role, replicas in ((Role.MASTER, view.spec.masters.replicas), (Role.COREAPP, view.spec.coreapps.replicas)):
        if replicas < 2:
            continue  # a budget over a single pod would block every drain
        out.append({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": view.names.role(role), "labels": labels(view.name, role)},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(view.name, role)}},
        })
    return out
