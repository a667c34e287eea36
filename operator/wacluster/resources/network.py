"""NetworkPolicies: into each role only what must reach it. Ingress only; what a role may reach
is left open (the gateway, the Cloud API and an external database live outside the cluster)."""

from __future__ import annotations

from typing import Any

from wacluster.api.interprocess import Label, Port, Role
from wacluster.resources.database import DATABASE_COMPONENT
from wacluster.resources.naming import labels
from wacluster.resources.pods import ClusterView

# The roles whose pods talk to the cluster's own PostgreSQL.
DATABASE_CLIENTS = (Role.MASTER, Role.COREAPP, Role.WEBAPP, Role.DBUPGRADE)


def _cluster_pods(view: ClusterView, components: tuple[str, ...]) -> dict[str, Any]:
    """A peer: this cluster's pods of the given components (same namespace)."""
    return {"podSelector": {"matchLabels": {Label.CLUSTER: view.name},
                            "matchExpressions": [{"key": Label.COMPONENT, "operator": "In",
                                                  "values": list(components)}]}}


def _rule(port: int, peers: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Ingress to `port` from `peers`; from anywhere when `peers` is None."""
    rule: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": port}]}
    if peers is not None:
        rule["from"] = peers
    return rule


def _policy(view: ClusterView, component: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": f"{view.name}-{component}", "labels": labels(view.name, component)},
        "spec": {"podSelector": {"matchLabels": {Label.CLUSTER: view.name, Label.COMPONENT: component}},
                 "policyTypes": ["Ingress"], "ingress": rules},
    }


def network_policies(view: ClusterView) -> list[dict[str, Any]]:
    """One policy per role; none when the spec switches them off."""
    spec = view.spec.network_policy
    if not spec.enabled:
        return []
    metrics = _rule(Port.METRICS, spec.metrics_from or None)
    policies = [
        _policy(view, Role.WEBAPP, [_rule(Port.API, spec.api_from or None), metrics]),
        # Heartbeats come from masters, routed messages from webapps: nobody else.
        _policy(view, Role.COREAPP, [_rule(Port.CONTROL, [_cluster_pods(view, (Role.MASTER, Role.WEBAPP))]),
                                     metrics]),
        _policy(view, Role.MASTER, [metrics]),
    ]
    if view.spec.gateway.mode == "sandbox":
        policies.append(_policy(view, Role.SANDBOX, [_rule(Port.GATEWAY, [_cluster_pods(view, (Role.COREAPP,))]),
                                                     metrics]))
    if view.spec.database.mode == "embedded":
        policies.append(_policy(view, DATABASE_COMPONENT,
                                [_rule(Port.DATABASE, [_cluster_pods(view, DATABASE_CLIENTS)])]))
    return policies
