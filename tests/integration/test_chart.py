"""The Helm chart: lint, rendering for several value sets, schema errors, the monitoring bundle
checked by promtool, and install/upgrade/uninstall against the local control plane with the
operator running under the chart's own ServiceAccount."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from operator_harness import OperatorProcess
from wacluster_testenv.build import bin_dir

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "wacluster"


def helm(*args: str, kubeconfig: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = [str(bin_dir() / "helm"), *args]
    if kubeconfig:
        argv.append(f"--kubeconfig={kubeconfig}")
    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {result.stderr}")
    return result


def render(*sets: str, namespace: str = "wa-system") -> list[dict]:
    args = ["template", "t", str(CHART), "-n", namespace, "--kube-version", "1.37.2"]
    for item in sets:
        args += ["--set", item]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


def by_kind(docs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for doc in docs:
        out.setdefault(doc["kind"], []).append(doc)
    return out


def test_chart_passes_strict_lint():
    result = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in result.stdout


def test_default_values_render_a_namespaced_least_privilege_operator():
    kinds = by_kind(render())
    assert set(kinds) == {"ServiceAccount", "Role", "RoleBinding", "Deployment", "Service", "PodDisruptionBudget"}
    deployment = kinds["Deployment"][0]
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["operator", "--metrics-port=8080", "--health-port=8081", "--namespace=wa-system"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["image"] == "wacluster:0.1.0"
    rules = yaml.safe_load((CHART / "files" / "operator-rules.yaml").read_text())
    assert kinds["Role"][0]["rules"] == rules
    assert not any(r for r in rules if "*" in r["verbs"] or "*" in r["resources"])


def test_the_operators_probes_ask_its_health_port_and_metrics_keep_their_own():
    container = by_kind(render("health.port=9443"))["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 9443}
    assert "--health-port=9443" in container["args"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}


def test_log_format_json_reaches_the_operators_arguments():
    args = by_kind(render("logFormat=json"))["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--log-format=json" in args


def test_cluster_wide_values_render_a_cluster_role():
    kinds = by_kind(render("watch.clusterWide=true"))
    assert "ClusterRole" in kinds and "ClusterRoleBinding" in kinds and "Role" not in kinds
    assert "--all-namespaces" in kinds["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["args"]


def test_watching_other_namespaces_binds_each_and_keeps_the_election_role():
    kinds = by_kind(render("watch.namespaces={team-a,team-b}"))
    namespaces = sorted(r["metadata"]["namespace"] for r in kinds["Role"])
    assert namespaces == ["team-a", "team-b", "wa-system"]
    args = kinds["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args


def test_monitoring_values_render_service_monitors_rules_and_dashboard():
    kinds = by_kind(render("metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true",
                           "metrics.grafanaDashboard.enabled=true"))
    assert len(kinds["ServiceMonitor"]) == 2
    alerts = {r["alert"] for r in kinds["PrometheusRule"][0]["spec"]["groups"][0]["rules"]}
    assert alerts == {"WaclusterNoPrimaryMaster", "WaclusterShardWithoutCoreapp", "WaclusterFailoverStorm",
                      "WaclusterDatabaseHeartbeatLag", "WaclusterOperatorReconcileErrors",
                      "WaclusterApiCertificateExpiresSoon", "WaclusterWebhookEventsDeadLettered",
                      "WaclusterDatabaseClockFast"}
    dashboard = json.loads(kinds["ConfigMap"][0]["data"]["wacluster.json"])
    assert len(dashboard["panels"]) >= 6


def test_service_monitors_label_runtime_series_with_their_cluster_and_keep_the_operators_namespace_label():
    monitors = {m["metadata"]["name"]: m for m in by_kind(render("metrics.serviceMonitor.enabled=true"))["ServiceMonitor"]}
    # The certificate expiry gauge's own `namespace` (the cluster's) must not become `exported_namespace`.
    assert monitors["t-wacluster"]["spec"]["endpoints"][0]["honorLabels"] is True
    assert monitors["t-wacluster-clusters"]["spec"]["endpoints"][0]["relabelings"] == [CLUSTER_LABEL]


CLUSTER_LABEL = {"sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"], "targetLabel": "cluster"}
RUNTIME_ROLES = ("master", "coreapp", "webapp", "sandbox")


def _workload_pods() -> dict[str, dict]:
    """The pod templates of a WhatsAppCluster's workloads as the operator builds them, by name."""
    from wacluster.api.v1alpha1 import WhatsAppClusterSpec
    from wacluster.resources.cluster import owned_objects
    from wacluster.resources.pods import ClusterView
    view = ClusterView("wa", "wa-system", "uid-1", WhatsAppClusterSpec.model_validate({}), "1.0.0")
    return {o["metadata"]["name"]: o["spec"]["template"] for o in owned_objects(view, "1.0.0")
            if o["kind"] in ("Deployment", "StatefulSet", "Job")}


def _selects(selector: dict, labels: dict) -> bool:
    return selector["matchLabels"].items() <= labels.items()


def test_pod_monitors_select_each_roles_pods_by_their_labels_and_metrics_port():
    kinds = by_kind(render("metrics.serviceMonitor.enabled=true", "metrics.podMonitor.enabled=true"))
    assert "ServiceMonitor" not in kinds  # every role is scraped through its PodMonitor, none twice
    monitors = {m["metadata"]["name"]: m["spec"] for m in kinds["PodMonitor"]}
    assert set(monitors) == {"t-wacluster-operator", *(f"t-wacluster-{role}" for role in RUNTIME_ROLES)}
    pods = _workload_pods()
    for role in RUNTIME_ROLES:
        spec = monitors[f"t-wacluster-{role}"]
        assert spec["namespaceSelector"] == {"matchNames": ["wa-system"]}
        assert [e["port"] for e in spec["podMetricsEndpoints"]] == ["metrics"]
        assert spec["podMetricsEndpoints"][0]["relabelings"] == [CLUSTER_LABEL]
        selected = [name for name, pod in pods.items() if _selects(spec["selector"], pod["metadata"]["labels"])]
        assert selected == [f"wa-{role}"], role
        ports = [p["name"] for c in pods[f"wa-{role}"]["spec"]["containers"] for p in c.get("ports", [])]
        assert "metrics" in ports, role
    operator = monitors["t-wacluster-operator"]
    deployment = kinds["Deployment"][0]["spec"]["template"]
    assert _selects(operator["selector"], deployment["metadata"]["labels"])
    assert "metrics" in [p["name"] for p in deployment["spec"]["containers"][0]["ports"]]
    assert operator["podMetricsEndpoints"] == [{"port": "metrics", "interval": "30s", "honorLabels": True}]


def test_roles_given_to_pod_monitors_are_left_out_of_the_service_monitors():
    kinds = by_kind(render("metrics.serviceMonitor.enabled=true", "metrics.podMonitor.enabled=true",
                           "metrics.podMonitor.roles={operator,coreapp}"))
    assert sorted(m["metadata"]["name"] for m in kinds["PodMonitor"]) == ["t-wacluster-coreapp",
                                                                         "t-wacluster-operator"]
    [clusters] = kinds["ServiceMonitor"]
    assert clusters["metadata"]["name"] == "t-wacluster-clusters"
    assert clusters["spec"]["selector"]["matchExpressions"] == [
        {"key": "app.kubernetes.io/component", "operator": "In", "values": ["master", "webapp", "sandbox"]}]


def test_pod_monitors_on_auto_follow_the_prometheus_operator_api():
    assert "PodMonitor" not in by_kind(render("metrics.podMonitor.enabled=auto"))
    kinds = by_kind([d for d in yaml.safe_load_all(helm(
        "template", "t", str(CHART), "--kube-version", "1.37.2", "--api-versions", "monitoring.coreos.com/v1",
        "--set", "metrics.podMonitor.enabled=auto").stdout) if d])
    assert len(kinds["PodMonitor"]) == 5 and "ServiceMonitor" not in kinds


def test_monitoring_is_off_by_default_without_the_prometheus_operator_api():
    assert "ServiceMonitor" not in by_kind(render())
    kinds = by_kind([d for d in yaml.safe_load_all(helm(
        "template", "t", str(CHART), "--kube-version", "1.37.2", "--api-versions", "monitoring.coreos.com/v1").stdout) if d])
    assert "ServiceMonitor" in kinds and "PrometheusRule" in kinds


def test_custom_image_values_reach_the_operator():
    kinds = by_kind(render("image.repository=registry.example/wa/wacluster", "image.tag=2.0.1",
                           "image.pullSecrets={regcred}"))
    spec = kinds["Deployment"][0]["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == "registry.example/wa/wacluster:2.0.1"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]


@pytest.mark.parametrize("bad,message", [
    ("replicas=0", "/replicas"), ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
    ("watch.namespaces={Bad_NS}", "/watch/namespaces/0"), ("metrics.port=80", "/metrics/port"),
    ("unknownKey=1", "unknownKey"), ("metrics.podMonitor.roles={dbupgrade}", "/metrics/podMonitor/roles/0"),
    ("metrics.podMonitor.enabled=yes", "/metrics/podMonitor/enabled"),
    ("health.port=80", "/health/port"), ("logFormat=yaml", "/logFormat"),
])
def test_bad_values_fail_with_a_message_naming_the_value(bad, message):
    result = helm("template", "t", str(CHART), "--kube-version", "1.37.2", "--set", bad, check=False)
    assert result.returncode != 0 and message in result.stderr


def test_alerting_rules_pass_promtool():
    result = subprocess.run([str(bin_dir() / "promtool"), "check", "rules", str(CHART / "files" / "alerts.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_metric_names_pass_promtool():
    exposition = subprocess.run(
        [sys.executable, "-c",
         "import wacluster.runtime.metrics, wacluster.controller.metrics, wacluster.runtime.webapp.app, "
         "wacluster.runtime.webapp.webhooks; from prometheus_client import generate_latest; "
         "import sys; sys.stdout.write(generate_latest().decode())"],
        capture_output=True, text=True, check=True).stdout
    assert "wacluster_failovers_total" in exposition and "wacluster_webapp_requests_total" in exposition
    result = subprocess.run([str(bin_dir() / "promtool"), "check", "metrics"], input=exposition,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _cluster_scoped(k, release: str) -> list[str]:
    out = k("get", "clusterroles,clusterrolebindings", "-l", f"app.kubernetes.io/instance={release}", "-o", "name")
    return out.split()


def test_install_upgrade_uninstall_with_the_operator_under_the_charts_account(kubeconfig, k, crd, running_operator,
                                                                               tmp_path):
    release, ns = f"wa{uuid.uuid4().hex[:6]}", f"chart-{uuid.uuid4().hex[:6]}"
    running_operator.stop()  # only the chart's operator may act in this test
    operator = None
    try:
        helm("install", release, str(CHART), "-n", ns, "--create-namespace", "--wait=false",
             "--set", "watch.clusterWide=true", kubeconfig=kubeconfig)
        assert len(_cluster_scoped(k, release)) == 2
        token = k("create", "token", f"{release}-wacluster", "-n", ns, "--duration=1h").strip()
        admin = yaml.safe_load(Path(kubeconfig).read_text())
        config = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
                  "clusters": [{"name": "c", "cluster": admin["clusters"][0]["cluster"]}],
                  "users": [{"name": "u", "user": {"token": token}}],
                  "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}
        config_path = tmp_path / "chart-operator.kubeconfig"
        config_path.write_text(json.dumps(config))
        operator = OperatorProcess(str(config_path), tmp_path / "operator.log", ["--all-namespaces"],
                                   identity="chart-operator")
        operator.start()
        operator.wait_log("leads the operator", timeout=60)
        k("apply", "-n", ns, "-f", str(ROOT / "examples" / "minimal.yaml"))
        from test_operator import until_reconciled
        until_reconciled(lambda: json.loads(k("get", "wac", "whatsapp", "-n", ns, "-o", "json")).get("status", {})
                         .get("phase") == "Ready", what="cluster Ready under the chart's operator")

        helm("upgrade", release, str(CHART), "-n", ns, "--reuse-values", "--set", "replicas=3", kubeconfig=kubeconfig)
        deployment = json.loads(k("get", "deployment", f"{release}-wacluster", "-n", ns, "-o", "json"))
        assert deployment["spec"]["replicas"] == 3

        k("delete", "wac", "whatsapp", "-n", ns, "--timeout=60s")
        helm("uninstall", release, "-n", ns, kubeconfig=kubeconfig)
        assert _cluster_scoped(k, release) == []
        assert k("get", "crd", "whatsappclusters.wacluster.io", "-o", "name").strip()  # CRDs stay (Helm)
    finally:
        if operator is not None:
            operator.stop()
        helm("uninstall", release, "-n", ns, kubeconfig=kubeconfig, check=False)
        k("delete", "namespace", ns, "--wait=false", check=False)
        running_operator.start()
        running_operator.wait_log("leads the operator", timeout=60)
