"""The operator against the real control plane, running under its own ServiceAccount token."""

from __future__ import annotations

import base64
import json
import uuid
from functools import partial

import pytest

from wacluster_testenv.eventually import eventually

pytestmark = pytest.mark.integration


# The operator converges within seconds; the bound is generous. kubectl failing (the `k` fixture's
# RuntimeError, e.g. an object not created yet) counts as "not yet".
until_reconciled = partial(eventually, timeout=90.0, interval=0.5, ignore=(RuntimeError,))


@pytest.fixture
def ns(k, running_operator):
    name = f"op-{uuid.uuid4().hex[:8]}"
    k("create", "namespace", name)
    yield name
    k("delete", "namespace", name, "--wait=false", check=False)


def apply_cluster(k, ns, name="wa", **spec):
    manifest = {"apiVersion": "wacluster.io/v1alpha1", "kind": "WhatsAppCluster",
                "metadata": {"name": name, "namespace": ns}, "spec": {"version": "1.0.0", **spec}}
    return k("apply", "-f", "-", input=json.dumps(manifest))


def get(k, ns, kind, name):
    return json.loads(k("get", kind, name, "-n", ns, "-o", "json"))


def status(k, ns, name="wa"):
    return get(k, ns, "wac", name).get("status") or {}


def wait_phase(k, ns, phase, name="wa", timeout=90):
    return until_reconciled(lambda: status(k, ns, name).get("phase") == phase and status(k, ns, name),
                            timeout=timeout, what=f"phase {phase}")


def image_of(k, ns, deployment):
    return get(k, ns, "deployment", deployment)["spec"]["template"]["spec"]["containers"][0]["image"]


def test_apply_creates_every_child_and_reports_ready(k, ns):
    apply_cluster(k, ns)
    st = wait_phase(k, ns, "Ready")
    assert st["version"] == "1.0.0" and st["readySummary"] == "5/5"
    conditions = {c["type"]: c for c in st["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["observedGeneration"] == get(k, ns, "wac", "wa")["metadata"]["generation"]
    for kind, name in [("deployment", "wa-master"), ("deployment", "wa-coreapp"), ("deployment", "wa-webapp"),
                       ("deployment", "wa-sandbox"), ("statefulset", "wa-db"), ("service", "wa-api"),
                       ("service", "wa-coreapp"), ("pdb", "wa-master"), ("configmap", "wa-settings"),
                       ("serviceaccount", "wa-runtime"), ("role", "wa-runtime"), ("rolebinding", "wa-runtime"),
                       ("secret", "wa-admin"), ("secret", "wa-api-tls"), ("secret", "wa-db-credentials"),
                       ("secret", "wa-internal"),
                       ("pvc", "wa-media"), ("job", "wa-dbupgrade-1-0-0")]:
        obj = get(k, ns, kind, name)
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "wa", (kind, name)
    owners = get(k, ns, "deployment", "wa-master")["metadata"]["ownerReferences"]
    assert owners[0]["kind"] == "WhatsAppCluster" and owners[0]["controller"] is True
    assert image_of(k, ns, "wa-coreapp") == "wacluster:1.0.0"
    printed = k("get", "wac", "wa", "-n", ns)
    assert "Ready" in printed and "1.0.0" in printed
    events = k("get", "events", "-n", ns, "--field-selector", "involvedObject.kind=WhatsAppCluster")
    assert "PhaseReady" in events


def test_scaling_and_shards_reach_the_children(k, ns):
    apply_cluster(k, ns)
    wait_phase(k, ns, "Ready")
    apply_cluster(k, ns, shards=2, coreapps={"replicas": 3}, masters={"replicas": 1})
    until_reconciled(lambda: get(k, ns, "deployment", "wa-coreapp")["spec"]["replicas"] == 3, what="3 coreapps")
    until_reconciled(lambda: get(k, ns, "deployment", "wa-master")["spec"]["replicas"] == 1, what="1 master")
    settings = lambda: json.loads(get(k, ns, "configmap", "wa-settings")["data"]["settings.json"])  # noqa: E731
    until_reconciled(lambda: settings()["shards"] == 2, what="2 shards in settings")
    until_reconciled(lambda: "NotFound" in k("get", "pdb", "wa-master", "-n", ns, check=False) or
                     not k("get", "pdb", "wa-master", "-n", ns, "--ignore-not-found"), what="master PDB pruned")
    st = wait_phase(k, ns, "Ready")
    degraded = {c["type"]: c for c in st["conditions"]}["Degraded"]
    assert degraded["status"] == "True" and "only one master" in degraded["message"]


def test_deleted_or_edited_children_are_restored(k, ns):
    apply_cluster(k, ns)
    wait_phase(k, ns, "Ready")
    original_uid = get(k, ns, "deployment", "wa-webapp")["metadata"]["uid"]
    k("delete", "deployment", "wa-webapp", "-n", ns)
    until_reconciled(lambda: get(k, ns, "deployment", "wa-webapp")["metadata"]["uid"] != original_uid,
                     what="webapp Deployment re-created")
    k("scale", "deployment", "wa-master", "-n", ns, "--replicas=5")
    until_reconciled(lambda: get(k, ns, "deployment", "wa-master")["spec"]["replicas"] == 2, what="replicas restored")
    k("patch", "service", "wa-api", "-n", ns, "--type=merge", "-p", '{"spec":{"ports":[{"name":"https","port":1234,"targetPort":"https"}]}}')
    until_reconciled(lambda: any(p["port"] == 9090 for p in get(k, ns, "service", "wa-api")["spec"]["ports"]),
                     what="API port restored")


def test_a_spec_the_api_server_rejects_keeps_the_running_roles_and_says_why(k, ns):
    apply_cluster(k, ns)
    wait_phase(k, ns, "Ready")
    uids = {role: get(k, ns, "deployment", f"wa-{role}")["metadata"]["uid"] for role in ("master", "coreapp", "webapp")}
    # Passes admission (a map of strings) but no pod may carry it: every role's apply gets a 422.
    bad = {"nodeSelector": {"not a label key!": "x"}}
    apply_cluster(k, ns, masters=bad, coreapps=bad, webapps=bad)
    degraded = until_reconciled(
        lambda: next((c for c in status(k, ns).get("conditions", [])
                      if c["type"] == "Degraded" and c["reason"] == "ApplyFailed"), None),
        what="Degraded: ApplyFailed")
    assert "wa-coreapp" in degraded["message"] and "nodeSelector" in degraded["message"]
    for role, uid in uids.items():
        assert get(k, ns, "deployment", f"wa-{role}")["metadata"]["uid"] == uid, f"{role} was replaced"
    events = k("get", "events", "-n", ns, "--field-selector", "involvedObject.kind=WhatsAppCluster,reason=ApplyRejected")
    assert "nodeSelector" in events
    apply_cluster(k, ns)  # the fix resumes reconciling without anything having been lost
    wait_phase(k, ns, "Ready")
    for role, uid in uids.items():
        assert get(k, ns, "deployment", f"wa-{role}")["metadata"]["uid"] == uid


def test_network_policies_are_kept_per_role_and_removed_when_switched_off(k, ns):
    apply_cluster(k, ns, networkPolicy={"apiFrom": [{"namespaceSelector": {"matchLabels": {"team": "crm"}}}]})
    wait_phase(k, ns, "Ready")
    names = lambda: sorted(k("get", "networkpolicy", "-n", ns, "-o", "name").split())  # noqa: E731
    assert names() == [f"networkpolicy.networking.k8s.io/wa-{c}" for c in ("coreapp", "database", "master", "sandbox", "webapp")]
    webapp = get(k, ns, "networkpolicy", "wa-webapp")["spec"]
    assert webapp["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {"team": "crm"}}}]
    k("delete", "networkpolicy", "wa-coreapp", "-n", ns)
    until_reconciled(lambda: "networkpolicy.networking.k8s.io/wa-coreapp" in names(), what="coreapp policy restored")
    apply_cluster(k, ns, networkPolicy={"enabled": False})
    until_reconciled(lambda: names() == [], what="every NetworkPolicy removed")


CLOUD_TOKEN = "EAAG-operator-test-token-never-shown-9c1e"


def _cloud_gateway(phone_number_id="106540352242922", **extra):
    return {"mode": "cloud", "cloud": {"phoneNumberId": phone_number_id, "credentialsSecret": "meta-cloud", **extra}}


def _create_cloud_secret(k, ns):
    k("create", "secret", "generic", "meta-cloud", "-n", ns, f"--from-literal=access-token={CLOUD_TOKEN}",
      "--from-literal=app-secret=app-secret-value", "--from-literal=verify-token=verify-token-value")


def _container_env(k, ns, deployment):
    container = get(k, ns, "deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_a_cloud_cluster_runs_no_sandbox_and_gives_the_coreapps_the_cloud_account(k, ns, running_operator):
    _create_cloud_secret(k, ns)
    apply_cluster(k, ns, gateway=_cloud_gateway(messagesPerSecond=250))
    wait_phase(k, ns, "Ready")
    for kind in ("deployment", "service", "networkpolicy"):
        assert "wa-sandbox" not in k("get", kind, "-n", ns, "-o", "name")
    env = _container_env(k, ns, "wa-coreapp")
    assert env["WACLUSTER_GATEWAY_MODE"] == "cloud"
    assert env["WACLUSTER_CLOUD_PHONE_NUMBER_ID"] == "106540352242922"
    assert env["WACLUSTER_CLOUD_MESSAGES_PER_SECOND"] == "250"
    assert env["WACLUSTER_CLOUD_ACCESS_TOKEN"] == {"secretKeyRef": {"name": "meta-cloud", "key": "access-token"}}
    # Webapps register the number and fetch inbound media with it; the sandbox and masters never see it.
    assert _container_env(k, ns, "wa-webapp")["WACLUSTER_CLOUD_ACCESS_TOKEN"] == env["WACLUSTER_CLOUD_ACCESS_TOKEN"]
    assert "WACLUSTER_CLOUD_ACCESS_TOKEN" not in _container_env(k, ns, "wa-master")
    # The operator never reads the Secret: the token is nowhere it writes.
    events = k("get", "events", "-n", ns, "-o", "json")
    assert CLOUD_TOKEN not in json.dumps(get(k, ns, "wac", "wa")) + events + running_operator.log()


def test_switching_a_cluster_to_the_cloud_api_prunes_its_sandbox(k, ns):
    apply_cluster(k, ns)
    wait_phase(k, ns, "Ready")
    assert get(k, ns, "deployment", "wa-sandbox")
    _create_cloud_secret(k, ns)
    apply_cluster(k, ns, gateway=_cloud_gateway())
    until_reconciled(lambda: not any("wa-sandbox" in k("get", kind, "-n", ns, "-o", "name")
                                     for kind in ("deployment", "service", "networkpolicy")),
                     what="the sandbox's Deployment, Service and NetworkPolicy pruned")
    until_reconciled(lambda: _container_env(k, ns, "wa-coreapp").get("WACLUSTER_GATEWAY_MODE") == "cloud",
                     what="coreapps in cloud mode")
    wait_phase(k, ns, "Ready")


def test_the_generated_api_certificate_is_renewed_when_its_renewal_time_has_come(k, ns):
    apply_cluster(k, ns)
    wait_phase(k, ns, "Ready")
    record = status(k, ns)["apiCertificate"]
    assert record["notBefore"] < record["renewAt"] < record["notAfter"]
    before = get(k, ns, "secret", "wa-api-tls")["data"]["tls.crt"]
    # A certificate from a year ago: two thirds of its life are long gone.
    year_old = {"notBefore": "2025-01-01T00:00:00Z", "notAfter": "2026-01-01T00:00:00Z", "renewAt": "2025-09-01T00:00:00Z"}

    def renewed() -> bool:
        if status(k, ns)["apiCertificate"] == record:
            # Still the original: (again) put the year-old record in place; a status write of a
            # reconcile that started before the previous patch may have replaced it.
            k("patch", "wac", "wa", "-n", ns, "--subresource=status", "--type=merge",
              "-p", json.dumps({"status": {"apiCertificate": year_old}}))
        return get(k, ns, "secret", "wa-api-tls")["data"]["tls.crt"] != before

    until_reconciled(renewed, timeout=120, interval=2, what="a new certificate in the Secret")
    after = until_reconciled(lambda: (c := status(k, ns)["apiCertificate"]) not in (record, year_old) and c,
                             what="the renewed certificate on record")
    assert after["notAfter"] > "2026-01-01T00:00:00Z" and after["notBefore"] >= record["notBefore"]
    secret = get(k, ns, "secret", "wa-api-tls")["data"]
    assert secret["ca.crt"] == secret["tls.crt"]
    events = k("get", "events", "-n", ns, "--field-selector", "involvedObject.kind=WhatsAppCluster,reason=CertificateRenewed")
    assert "API certificate renewed" in events


def test_version_upgrade_runs_the_dbupgrade_job_then_rolls_the_roles(k, ns):
    apply_cluster(k, ns)
    wait_phase(k, ns, "Ready")
    apply_cluster(k, ns, version="1.1.0")
    job = until_reconciled(lambda: get(k, ns, "job", "wa-dbupgrade-1-1-0"), what="dbupgrade Job for 1.1.0")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "wacluster:1.1.0"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["dbupgrade"]
    st = until_reconciled(lambda: status(k, ns).get("version") == "1.1.0" and status(k, ns), what="version 1.1.0")
    finished = get(k, ns, "job", "wa-dbupgrade-1-1-0")["status"]
    assert finished.get("succeeded") == 1
    for role in ("master", "coreapp", "webapp"):
        assert image_of(k, ns, f"wa-{role}") == "wacluster:1.1.0"
    assert st["phase"] in ("Ready", "Upgrading")
    events = k("get", "events", "-n", ns, "--field-selector", "involvedObject.kind=WhatsAppCluster")
    assert "UpgradeStarted" in events


def _failing_job(ns: str, name: str) -> dict:
    """A dbupgrade Job whose pod can never be scheduled, so it fails on its deadline."""
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": ns, "labels": {
                "app.kubernetes.io/instance": "wa", "app.kubernetes.io/managed-by": "wacluster-operator"}},
            "spec": {"backoffLimit": 0, "activeDeadlineSeconds": 1, "template": {
                "spec": {"restartPolicy": "Never", "nodeSelector": {"wacluster.io/no-such-node": "true"},
                         "containers": [{"name": "dbupgrade", "image": "wacluster:9.9.9", "args": ["dbupgrade"]}]}}}}


def test_failed_dbupgrade_job_blocks_the_rollout_with_a_clear_condition(k, ns):
    apply_cluster(k, ns)
    wait_phase(k, ns, "Ready")
    k("apply", "-f", "-", input=json.dumps(_failing_job(ns, "wa-dbupgrade-9-9-9")))
    until_reconciled(lambda: any(c["type"] == "Failed" and c["status"] == "True"
                                 for c in get(k, ns, "job", "wa-dbupgrade-9-9-9")["status"].get("conditions", [])),
                     what="the prepared Job failed")
    apply_cluster(k, ns, version="9.9.9")
    st = wait_phase(k, ns, "Failed")
    degraded = {c["type"]: c for c in st["conditions"]}["Degraded"]
    assert degraded["reason"] == "DBUpgradeFailed" and "dbupgrade Job for 9.9.9 failed" in degraded["message"]
    assert st["version"] == "1.0.0" and st["targetVersion"] == "9.9.9"
    for role in ("master", "coreapp", "webapp"):
        assert image_of(k, ns, f"wa-{role}") == "wacluster:1.0.0"
    apply_cluster(k, ns, version="1.0.0")  # fixing the version resumes
    st = wait_phase(k, ns, "Ready")
    assert st["version"] == "1.0.0"


INVALID = [
    ({"shards": 3}, "shards"),
    ({"shards": 4, "coreapps": {"replicas": 2}}, "coreapps.replicas must be at least shards"),
    ({"monitoring": {"heartbeatInterval": 5, "unhealthyInterval": 6}}, "at least twice monitoring.heartbeatInterval"),
    ({"monitoring": {"leaseDuration": 5, "renewDeadline": 10}}, "leaseDuration > renewDeadline > retryPeriod"),
    ({"database": {"mode": "external"}}, "database.external (host and credentialsSecret) is required"),
    ({"gateway": {"mode": "external"}}, "gateway.endpoint is required"),
    ({"gateway": {"mode": "cloud", "cloud": {"credentialsSecret": "meta-cloud"}}},
     "gateway.cloud.phoneNumberId and gateway.cloud.credentialsSecret are required when gateway.mode is cloud"),
    ({"gateway": {"mode": "cloud"}}, "gateway.cloud.phoneNumberId and gateway.cloud.credentialsSecret are required"),
    ({"gateway": {"cloud": {"phoneNumberId": "1065", "credentialsSecret": "meta-cloud"}}},
     "gateway.cloud is set only when gateway.mode is cloud"),
    ({"gateway": {"mode": "cloud", "cloud": {"phoneNumberId": "1065", "credentialsSecret": "meta-cloud",
                                             "messagesPerSecond": 5000}}}, "spec.gateway.cloud.messagesPerSecond"),
    ({"gateway": {"mode": "cloud", "cloud": {"phoneNumberId": "1065", "credentialsSecret": "meta-cloud",
                                             "webhookPath": "/v1/cloud"}}},
     "gateway.cloud.webhookPath may not be / or lie under /v1/"),
    ({"masters": {"replicas": 0}}, "spec.masters.replicas"),
    ({"version": "bad version!"}, "spec.version"),
    ({"media": {"accessMode": "ReadOnlyMany"}}, "spec.media.accessMode"),
    ({"deletionPolicy": "Keep"}, "spec.deletionPolicy"),
    ({"api": {"port": 70000}}, "spec.api.port"),
    ({"media": {"size": "lots"}}, "spec.media.size"),
    ({"coreapps": {"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}},
     "resources.requests must not exceed resources.limits"),
    ({"webapps": {"resources": {"requests": {"cpu": "lots"}}}}, "spec.webapps.resources.requests.cpu"),
    ({"masters": {"resources": {"limits": {"memory": "1Gb"}}}}, "spec.masters.resources.limits.memory"),
]


@pytest.mark.parametrize("spec,message", INVALID, ids=[m for _, m in INVALID])
def test_invalid_manifest_is_rejected_with_a_message_saying_what_to_fix(k, crd, spec, message):
    manifest = {"apiVersion": "wacluster.io/v1alpha1", "kind": "WhatsAppCluster",
                "metadata": {"name": "bad", "namespace": "default"}, "spec": spec}
    with pytest.raises(RuntimeError) as err:
        k("apply", "--dry-run=server", "-f", "-", input=json.dumps(manifest))
    assert message in str(err.value)


def test_database_mode_is_immutable(k, ns):
    apply_cluster(k, ns)
    with pytest.raises(RuntimeError) as err:
        apply_cluster(k, ns, database={"mode": "external", "external": {
            "host": "db.example", "credentialsSecret": {"name": "creds"}}})
    assert "database.mode is immutable" in str(err.value)


def _secret_password(k, ns, name):
    return base64.b64decode(get(k, ns, "secret", name)["data"]["password"]).decode()


def test_retain_keeps_data_and_recreation_reattaches_it(k, ns):
    apply_cluster(k, ns)
    wait_phase(k, ns, "Ready")
    db_claim = until_reconciled(lambda: get(k, ns, "pvc", "data-wa-db-0"), what="database claim")
    media_uid = get(k, ns, "pvc", "wa-media")["metadata"]["uid"]
    password = _secret_password(k, ns, "wa-db-credentials")
    k("delete", "wac", "wa", "-n", ns, "--timeout=60s")
    until_reconciled(lambda: not k("get", "deployment", "-n", ns, "-l", "app.kubernetes.io/instance=wa",
                                   "-o", "name"), what="owned objects collected")
    assert get(k, ns, "pvc", "wa-media")["metadata"]["uid"] == media_uid
    assert get(k, ns, "pvc", "data-wa-db-0")["metadata"]["uid"] == db_claim["metadata"]["uid"]
    assert _secret_password(k, ns, "wa-db-credentials") == password

    apply_cluster(k, ns)
    wait_phase(k, ns, "Ready")
    assert get(k, ns, "pvc", "wa-media")["metadata"]["uid"] == media_uid
    assert get(k, ns, "pvc", "data-wa-db-0")["metadata"]["uid"] == db_claim["metadata"]["uid"]
    assert _secret_password(k, ns, "wa-db-credentials") == password


def test_delete_policy_removes_volumes_and_database_credentials(k, ns):
    apply_cluster(k, ns, deletionPolicy="Delete")
    wait_phase(k, ns, "Ready")
    until_reconciled(lambda: get(k, ns, "pvc", "data-wa-db-0"), what="database claim")
    k("delete", "wac", "wa", "-n", ns, "--timeout=60s")
    for kind, name in [("pvc", "wa-media"), ("pvc", "data-wa-db-0"), ("secret", "wa-db-credentials")]:
        until_reconciled(lambda: not k("get", kind, name, "-n", ns, "--ignore-not-found", "-o", "name")
                         or get(k, ns, kind, name)["metadata"].get("deletionTimestamp"),
                         what=f"{kind} {name} deleted")


def test_operator_restart_mid_reconcile_leaves_no_duplicates(k, ns, running_operator):
    apply_cluster(k, ns)
    until_reconciled(lambda: get(k, ns, "secret", "wa-admin"), what="first objects created", interval=0.1)
    running_operator.kill()  # SIGKILL half-way through the first reconcile
    admin_password = _secret_password(k, ns, "wa-admin")
    running_operator.start()
    wait_phase(k, ns, "Ready")
    assert _secret_password(k, ns, "wa-admin") == admin_password, "a generated secret was rotated"
    jobs = k("get", "jobs", "-n", ns, "-o", "name").split()
    assert jobs == ["job.batch/wa-dbupgrade-1-0-0"]
    deployments = sorted(k("get", "deployments", "-n", ns, "-o", "name").split())
    assert deployments == [f"deployment.apps/wa-{r}" for r in ("coreapp", "master", "sandbox", "webapp")]
    pods = json.loads(k("get", "pods", "-n", ns, "-l", "app.kubernetes.io/component=master", "-o", "json"))["items"]
    assert len([p for p in pods if not p["metadata"].get("deletionTimestamp")]) == 2


def test_operator_runs_with_least_privilege(k, operator_config):
    from operator_harness import kubectl

    def can(*args):
        return kubectl(operator_config, "auth", "can-i", *args, check=False).strip()

    assert can("patch", "whatsappclusters.wacluster.io", "-A") == "yes"
    assert can("create", "deployments", "-n", "default") == "yes"
    assert can("create", "clusterroles") == "no"
    assert can("delete", "nodes") == "no"
    assert can("list", "secrets", "-n", "default") == "no"
    assert can("get", "secrets", "-n", "default") == "no"
    assert can("create", "pods", "-n", "default") == "no"


def test_kubectl_explain_describes_every_spec_field(k, crd):
    out = k("explain", "whatsappcluster.spec")
    assert "Number of shards (multiconnect)" in out
    monitoring = k("explain", "whatsappcluster.spec.monitoring")
    assert "Seconds between heartbeats from every master to every coreapp" in monitoring


def _master_lease(ns: str, holder: str, shards: list[dict]) -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "wa-master", "namespace": ns,
                         "labels": {"app.kubernetes.io/instance": "wa",
                                    "app.kubernetes.io/managed-by": "wacluster-operator"},
                         "annotations": {"wacluster.io/shard-map": json.dumps(shards)}},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}}


def test_status_mirrors_the_primary_master_and_shard_map_published_on_the_lease(k, ns):
    """The primary master publishes the shard map on its Lease (the operator never reads the
    database); here a Lease written as the master writes it stands in for the master."""
    apply_cluster(k, ns)
    wait_phase(k, ns, "Ready")
    shards = [{"shard": 0, "coreapp": "wa-coreapp-aaa", "epoch": 3, "since": "2026-01-01T00:00:00Z"}]
    k("apply", "-f", "-", input=json.dumps(_master_lease(ns, "wa-master-xyz", shards)))
    st = until_reconciled(lambda: status(k, ns).get("primaryMaster") == "wa-master-xyz" and status(k, ns),
                          what="primary mirrored")
    assert st["shards"][0]["coreapp"] == "wa-coreapp-aaa" and st["shards"][0]["epoch"] == 3
    assert "wa-master-xyz" in k("get", "wac", "wa", "-n", ns)
    shards = [{"shard": 0, "coreapp": "wa-coreapp-bbb", "epoch": 4, "since": "2026-01-01T00:01:00Z"}]
    k("apply", "-f", "-", input=json.dumps(_master_lease(ns, "wa-master-xyz", shards)))
    until_reconciled(lambda: "CoreappPromoted" in k("get", "events", "-n", ns, "--field-selector",
                                                    "involvedObject.kind=WhatsAppCluster"), what="promotion event")
    shards = [{"shard": 0, "coreapp": None, "epoch": 4, "since": "2026-01-01T00:01:00Z"}]
    k("apply", "-f", "-", input=json.dumps(_master_lease(ns, "wa-master-xyz", shards)))
    st = wait_phase(k, ns, "Degraded")
    degraded = {c["type"]: c for c in st["conditions"]}["Degraded"]
    assert degraded["reason"] == "ShardsUnassigned" and "[0]" in degraded["message"]


@pytest.mark.parametrize("example", ["minimal.yaml", "multiconnect.yaml", "production.yaml", "cloud.yaml"])
def test_examples_are_accepted_by_the_api_server(k, crd, example):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / example
    out = k("apply", "--dry-run=server", "-n", "default", "-f", str(path))
    assert "created (server dry run)" in out


def test_support_bundle_collects_the_cluster_into_one_file(k, ns, kubeconfig, tmp_path):
    import os
    import subprocess
    import sys

    apply_cluster(k, ns)
    wait_phase(k, ns, "Ready")
    out = tmp_path / "bundle.txt"
    result = subprocess.run([sys.executable, "-m", "wacluster", "support-bundle", "wa", "-n", ns, "-o", str(out)],
                            env={**os.environ, "KUBECONFIG": kubeconfig}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "[support-bundle] events" in result.stdout  # a progress line per step
    text = out.read_text()
    for title in (f"===== WhatsAppCluster {ns}/wa", "===== events", "===== pods", "===== logs wa-master-",
                  "===== GET /v1/health"):
        assert title in text
    assert "PhaseReady" in text and "phase: Ready" in text
