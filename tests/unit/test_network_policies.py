"""Into each role only what must reach it: the NetworkPolicies read as who may connect where."""

from __future__ import annotations

import pytest

from wacluster.api.interprocess import Label, Port, Role
from wacluster.api.v1alpha1 import WhatsAppClusterSpec
from wacluster.resources.cluster import owned_objects
from wacluster.resources.pods import ClusterView

pytestmark = pytest.mark.unit


def _policies(**spec) -> list[dict]:
    view = ClusterView("wa", "ns", "uid-1", WhatsAppClusterSpec.model_validate(spec), "1.0.0")
    return [o for o in owned_objects(view, "1.0.0") if o["kind"] == "NetworkPolicy"]


def _pod(component: str, cluster: str = "wa") -> dict[str, str]:
    return {Label.CLUSTER: cluster, Label.COMPONENT: component}


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In", expr
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def may_connect(policies: list[dict], source: dict[str, str] | None, target: dict[str, str], port: int) -> bool:
    """NetworkPolicy ingress semantics for pods of one namespace; `source` None is a client
    outside the namespace (matched only by rules without `from`)."""
    selecting = [p for p in policies if _selects(p["spec"]["podSelector"], target)]
    if not selecting:
        return True  # no policy isolates the pod
    for policy in selecting:
        for rule in policy["spec"]["ingress"]:
            if port not in [p["port"] for p in rule.get("ports", [])]:
                continue
            peers = rule.get("from")
            if peers is None:
                return True
            if source is not None and any("podSelector" in peer and _selects(peer["podSelector"], source)
                                          for peer in peers):
                return True
    return False


def test_coreapp_control_port_admits_only_the_clusters_masters_and_webapps():
    policies = _policies()
    coreapp = _pod(Role.COREAPP)
    assert may_connect(policies, _pod(Role.MASTER), coreapp, Port.CONTROL)
    assert may_connect(policies, _pod(Role.WEBAPP), coreapp, Port.CONTROL)
    assert not may_connect(policies, _pod(Role.WEBAPP, cluster="other"), coreapp, Port.CONTROL)
    assert not may_connect(policies, _pod(Role.SANDBOX), coreapp, Port.CONTROL)
    assert not may_connect(policies, None, coreapp, Port.CONTROL)


def test_the_database_admits_only_the_clusters_roles():
    policies = _policies()
    database = _pod("database")
    for role in (Role.MASTER, Role.COREAPP, Role.WEBAPP, Role.DBUPGRADE):
        assert may_connect(policies, _pod(role), database, Port.DATABASE), role
    assert not may_connect(policies, _pod(Role.SANDBOX), database, Port.DATABASE)
    assert not may_connect(policies, _pod(Role.COREAPP, cluster="other"), database, Port.DATABASE)
    assert not may_connect(policies, None, database, Port.DATABASE)


def test_the_sandbox_admits_only_coreapps():
    policies = _policies()
    assert may_connect(policies, _pod(Role.COREAPP), _pod(Role.SANDBOX), Port.GATEWAY)
    assert not may_connect(policies, _pod(Role.WEBAPP), _pod(Role.SANDBOX), Port.GATEWAY)


def test_the_api_is_open_by_default_and_limited_to_the_given_peers():
    webapp = _pod(Role.WEBAPP)
    assert may_connect(_policies(), None, webapp, Port.API)
    peers = [{"podSelector": {"matchLabels": {"app": "crm"}}}]
    limited = _policies(networkPolicy={"apiFrom": peers})
    assert may_connect(limited, {"app": "crm"}, webapp, Port.API)
    assert not may_connect(limited, {"app": "other"}, webapp, Port.API)
    assert not may_connect(limited, None, webapp, Port.API)


def test_metrics_stay_reachable_for_scraping_and_nothing_else_reaches_a_master():
    policies = _policies()
    for role in (Role.MASTER, Role.COREAPP, Role.WEBAPP, Role.SANDBOX):
        assert may_connect(policies, None, _pod(role), Port.METRICS), role
    assert not may_connect(policies, _pod(Role.WEBAPP), _pod(Role.MASTER), Port.CONTROL)


def test_switched_off_there_are_none_and_external_parts_get_none():
    assert _policies(networkPolicy={"enabled": False}) == []
    names = {p["metadata"]["name"] for p in _policies(
        gateway={"mode": "external", "endpoint": "https://gw.example"},
        database={"mode": "external", "external": {"host": "pg.example", "credentialsSecret": {"name": "pg"}}})}
    assert names == {"wa-master", "wa-coreapp", "wa-webapp"}
