"""Every metric the dashboard and the alerts query is one a role really exports: each query's
metric names (and the labels it selects or groups by) are found in a real scrape of the role that
should export them, the runtime roles running as processes against the test PostgreSQL and API
server and the operator reconciling a WhatsAppCluster, each read over HTTP at /metrics."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from operator_harness import OperatorProcess
from runtime_cluster import PASSWORD, connected
from wacluster_testenv.apiclient import ApiClient
from wacluster_testenv.eventually import eventually
from wacluster_testenv.processes import free_port

pytestmark = pytest.mark.integration
FILES = Path(__file__).resolve().parents[2] / "charts" / "wacluster" / "files"

# Which role's scrape each queried series comes from (a histogram is queried by its _bucket series).
EXPORTED_BY = {
    "wacluster_master_is_primary": "master",
    "wacluster_shard_connected": "master",
    "wacluster_failovers_total": "master",
    "wacluster_failover_detection_seconds_bucket": "master",
    "wacluster_db_heartbeat_age_seconds": "master",
    "wacluster_coreapp_database_clock_rate": "coreapp",
    "wacluster_webapp_requests_total": "webapp",
    "wacluster_webapp_request_duration_seconds_bucket": "webapp",
    "wacluster_webhook_events_dead_total": "webapp",
    "wacluster_operator_reconciles_total": "operator",
    "wacluster_api_certificate_expiry_timestamp_seconds": "operator",
}
# Labels Prometheus and the chart's monitors give every scraped series (`cluster`: the relabeling).
TARGET_LABELS = {"namespace", "cluster", "pod", "job", "instance", "service", "container", "endpoint"}
METRIC = re.compile(r"\b(wacluster_[a-z0-9_]+)\b(?:\{([^}]*)\})?")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def queries() -> dict[str, str]:
    """Every PromQL expression of the alerts and the dashboard, by where it is."""
    out = {f"alert {rule['alert']}": rule["expr"]
           for group in yaml.safe_load((FILES / "alerts.yaml").read_text())["groups"] for rule in group["rules"]}

    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))
    for panel in panels(json.loads((FILES / "dashboard.json").read_text())["panels"]):
        for i, target in enumerate(panel.get("targets", [])):
            out[f"panel {panel['title']!r} target {i}"] = target["expr"]
    return out


def expected_labels() -> dict[str, dict[str, set[str]]]:
    """Per query, each metric it names and the labels (beyond the target's) the query needs on it:
    those it selects on, and those it groups or matches by, which some metric of the query must carry."""
    out = {}
    for where, expr in queries().items():
        metrics: dict[str, set[str]] = {}
        for name, selector in METRIC.findall(expr):
            names = set(MATCHER.findall(selector))
            metrics.setdefault(name, set()).update(names - TARGET_LABELS)
        grouped = {label.strip() for labels in GROUPING.findall(expr) for label in labels.split(",")} - TARGET_LABELS
        grouped.discard("le")
        out[where] = {"metrics": metrics, "grouped": grouped - {""}}
    return out


def scrape(port: int) -> dict[str, list[dict[str, str]]]:
    """One /metrics read: each sample name with the label sets it has."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    samples: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample.labels)
    return samples


def missing(scrapes: dict[str, dict[str, list[dict[str, str]]]], roles: set[str]) -> list[str]:
    """What the queries need of `roles` that their scrapes (by role) do not show."""
    out = []
    for where, need in expected_labels().items():
        metrics = {m: labels for m, labels in need["metrics"].items() if EXPORTED_BY.get(m) in roles}
        if not metrics:
            continue
        carried = set()
        for name, labels in metrics.items():
            samples = scrapes[EXPORTED_BY[name]].get(name)
            if not samples:
                out.append(f"{where}: no {name} sample in the {EXPORTED_BY[name]}'s scrape")
                continue
            seen = set().union(*(s.keys() for s in samples))
            carried |= seen
            if labels - seen:
                out.append(f"{where}: {name} has no label {sorted(labels - seen)}")
        if set(need["metrics"]) == set(metrics) and need["grouped"] - carried:
            out.append(f"{where}: no metric carries {sorted(need['grouped'] - carried)}")
    return out


def merged(ports: list[int]) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for port in ports:
        for name, samples in scrape(port).items():
            out.setdefault(name, []).extend(samples)
    return out


def test_every_metric_the_dashboard_and_alerts_query_has_a_role_that_exports_it():
    named = {name for need in expected_labels().values() for name in need["metrics"]}
    assert named - set(EXPORTED_BY) == set()
    assert named, "no query names a wacluster metric: the extraction is broken"


def test_queries_of_the_runtime_roles_that_group_by_namespace_keep_the_clusters_of_a_namespace_apart():
    merging = []
    for where, expr in queries().items():
        if any(EXPORTED_BY.get(name) == "operator" for name, _ in METRIC.findall(expr)):
            continue  # the operator's series are not a cluster's, except the ones that say which
        for clause in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            labels = {label.strip() for label in clause.split(",")}
            if "namespace" in labels and "cluster" not in labels:
                merging.append(f"{where}: by ({clause})")
    assert merging == []


def test_the_runtime_roles_export_what_the_dashboard_and_alerts_query(cluster):
    ports = {name: free_port() for name in ("master1", "master2", "wacore1", "wacore2", "webapp")}
    for name in ("master1", "master2"):
        cluster.start_master(name, args=("--metrics-port", str(ports[name])))
    for name in ("wacore1", "wacore2"):
        cluster.start_coreapp(name, ("--metrics-port", str(ports[name])))
    eventually(lambda: cluster.primary_master(), 30, what="a primary master")
    cluster.register()
    eventually(lambda: connected(cluster), 30, what="shard 0 served")
    role = cluster.start_webapp(password=PASSWORD, args=("--metrics-port", str(ports["webapp"])))
    assert ApiClient(f"https://127.0.0.1:{role.port}").login("admin", PASSWORD).status == 200

    def scrapes():
        return {"master": merged([ports["master1"], ports["master2"]]),
                "coreapp": merged([ports["wacore1"], ports["wacore2"]]), "webapp": merged([ports["webapp"]])}
    # The primary publishes the shard map and the nodes' heartbeat ages on its next cycles.
    eventually(lambda: not missing(scrapes(), {"master", "coreapp", "webapp"}), 30,
               what="every queried runtime series scraped", details=lambda: "\n".join(
                   missing(scrapes(), {"master", "coreapp", "webapp"})))


def test_the_operator_exports_what_the_dashboard_and_alerts_query(operator_config, k, tmp_path):
    ns, port = f"metrics-{uuid.uuid4().hex[:8]}", free_port()
    k("create", "namespace", ns)
    # Its own Lease, so it leads whether or not the suite's operator runs.
    operator = OperatorProcess(operator_config, tmp_path / "operator.log", identity=f"scrape-{ns}", args=[
        "--namespace", ns, "--lease-name", f"wacluster-operator-{ns}", "--metrics-port", str(port),
        "--health-port", "0"]).start()
    try:
        k("apply", "-f", "-", input=json.dumps({
            "apiVersion": "wacluster.io/v1alpha1", "kind": "WhatsAppCluster",
            "metadata": {"name": "wa", "namespace": ns}, "spec": {"version": "1.0.0"}}))
        eventually(lambda: not missing({"operator": scrape(port)}, {"operator"}), 90, interval=0.5,
                   ignore=(OSError,), what="every queried operator series scraped",
                   details=lambda: "\n".join(missing({"operator": scrape(port)}, {"operator"})))
        expiry = scrape(port)["wacluster_api_certificate_expiry_timestamp_seconds"]
        assert {"namespace": ns, "cluster": "wa"} in expiry
        # Deleted, the cluster's certificate is no longer exported (nor alerted on before its expiry).
        k("delete", "wac", "wa", "-n", ns, "--wait=false")
        eventually(lambda: {"namespace": ns, "cluster": "wa"} not in scrape(port).get(
            "wacluster_api_certificate_expiry_timestamp_seconds", []), 60, interval=0.5,
                   what="the deleted cluster's certificate expiry gone from the operator's metrics")
    finally:
        operator.stop()
        k("delete", "namespace", ns, "--wait=false", check=False)
