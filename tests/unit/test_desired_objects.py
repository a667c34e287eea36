"""What a WhatsAppCluster turns into, computed without a cluster."""

from __future__ import annotations

import pytest
from cryptography import x509

from wacluster.api.v1alpha1 import WhatsAppClusterSpec
from wacluster.crypto.credentials import self_signed_certificate
from wacluster.resources.cluster import owned_objects, unowned_objects
from wacluster.resources.pods import ClusterView
from wacluster.resources.secrets import api_hosts, api_tls_secret, generated_secrets, retained_names

pytestmark = pytest.mark.unit


def _view(**spec) -> ClusterView:
    return ClusterView("wa", "ns", "uid-1", WhatsAppClusterSpec.model_validate(spec), "1.0.0")


def _index(objects):
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def test_a_bare_manifest_yields_a_complete_ha_cluster():
    objects = _index(owned_objects(_view(), "1.0.0"))
    expected = {
        ("ServiceAccount", "wa-runtime"), ("Role", "wa-runtime"), ("RoleBinding", "wa-runtime"),
        ("ConfigMap", "wa-settings"), ("StatefulSet", "wa-db"), ("Service", "wa-db"),
        ("Job", "wa-dbupgrade-1-0-0"),
        ("Deployment", "wa-master"), ("Deployment", "wa-coreapp"), ("Deployment", "wa-webapp"),
        ("Deployment", "wa-sandbox"),
        ("Service", "wa-api"), ("Service", "wa-master"), ("Service", "wa-coreapp"), ("Service", "wa-sandbox"),
        ("PodDisruptionBudget", "wa-master"), ("PodDisruptionBudget", "wa-coreapp"),
        ("NetworkPolicy", "wa-master"), ("NetworkPolicy", "wa-coreapp"), ("NetworkPolicy", "wa-webapp"),
        ("NetworkPolicy", "wa-sandbox"), ("NetworkPolicy", "wa-database"),
    }
    assert set(objects) == expected
    assert objects[("Deployment", "wa-master")]["spec"]["replicas"] == 2
    assert objects[("Service", "wa-api")]["spec"]["ports"][0]["port"] == 9090
    assert [o["kind"] for o in unowned_objects(_view())] == ["PersistentVolumeClaim"]


def test_runtime_role_grants_only_the_lease_read_only_pods_and_reading_its_own_cluster():
    role = _index(owned_objects(_view(), "1.0.0"))[("Role", "wa-runtime")]
    verbs = {(r["resources"][0], tuple(r.get("resourceNames", ())), tuple(sorted(r["verbs"]))) for r in role["rules"]}
    assert ("pods", (), ("get", "list", "watch")) in verbs
    assert ("whatsappclusters", ("wa",), ("get", "list", "watch")) in verbs
    assert all(r["resources"] in (["leases"], ["pods"], ["whatsappclusters"]) for r in role["rules"])
    assert ("leases", ("wa-master",), ("get", "list", "patch", "update", "watch")) in verbs


def test_every_runtime_pod_is_locked_down():
    for obj in owned_objects(_view(), "1.0.0"):
        if obj["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert container["resources"]["requests"]


def test_coreapps_roll_one_at_a_time_new_pod_first():
    deployment = _index(owned_objects(_view(), "1.0.0"))[("Deployment", "wa-coreapp")]
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_pods_of_one_role_spread_over_hosts_and_zones_by_default():
    pod = _index(owned_objects(_view(), "1.0.0"))[("Deployment", "wa-coreapp")]["spec"]["template"]["spec"]
    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"


def test_user_affinity_replaces_the_default_spread():
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}
    pod = _index(owned_objects(_view(masters={"affinity": affinity}), "1.0.0"))[("Deployment", "wa-master")]
    assert pod["spec"]["template"]["spec"]["affinity"] == affinity
    assert "topologySpreadConstraints" not in pod["spec"]["template"]["spec"]


def test_external_database_runs_no_statefulset_and_reads_the_users_secret():
    view = _view(database={"mode": "external", "external": {
        "host": "pg.example", "credentialsSecret": {"name": "pg-creds"}}})
    objects = _index(owned_objects(view, "1.0.0"))
    assert ("StatefulSet", "wa-db") not in objects
    env = {e["name"]: e for e in objects[("Deployment", "wa-master")]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["WACLUSTER_DB_HOST"]["value"] == "pg.example"
    assert env["WACLUSTER_DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "pg-creds", "key": "password"}
    assert all(s["metadata"]["name"] != "wa-db-credentials"
               for s in generated_secrets(view, lambda: "pw"))


def test_existing_media_claim_is_attached_instead_of_creating_one():
    view = _view(media={"existingClaim": "shared-media"})
    assert unowned_objects(view) == []
    pod = _index(owned_objects(view, "1.0.0"))[("Deployment", "wa-webapp")]["spec"]["template"]["spec"]
    media = [v for v in pod["volumes"] if v["name"] == "media"][0]
    assert media["persistentVolumeClaim"]["claimName"] == "shared-media"
    assert ("PersistentVolumeClaim", "wa-media") not in retained_names(view)


def test_no_disruption_budget_over_a_single_pod():
    objects = _index(owned_objects(_view(masters={"replicas": 1}), "1.0.0"))
    assert ("PodDisruptionBudget", "wa-master") not in objects
    assert ("PodDisruptionBudget", "wa-coreapp") in objects


def test_external_gateway_runs_no_sandbox():
    objects = _index(owned_objects(_view(gateway={"mode": "external", "endpoint": "https://gw.example"}), "1.0.0"))
    assert ("Deployment", "wa-sandbox") not in objects
    env = {e["name"]: e.get("value") for e in
           objects[("Deployment", "wa-coreapp")]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["WACLUSTER_GATEWAY_URL"] == "https://gw.example"


CLOUD = {"mode": "cloud", "cloud": {"phoneNumberId": "106540352242922", "credentialsSecret": "meta-cloud"}}


def _containers(objects):
    return {name: o["spec"]["template"]["spec"]["containers"][0] for (kind, name), o in objects.items()
            if kind in ("Deployment", "Job")}


def _env(container) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


def test_cloud_gateway_runs_no_sandbox_and_points_no_role_at_one():
    objects = _index(owned_objects(_view(gateway=CLOUD), "1.0.0"))
    assert not [key for key in objects if key[1] == "wa-sandbox"]
    for name, container in _containers(objects).items():
        assert "WACLUSTER_GATEWAY_URL" not in _env(container), name


def test_cloud_gateway_settings_reach_the_coreapps_with_the_defaults():
    env = _env(_containers(_index(owned_objects(_view(gateway=CLOUD), "1.0.0")))["wa-coreapp"])
    values = {name: e.get("value") for name, e in env.items()}
    assert values["WACLUSTER_GATEWAY_MODE"] == "cloud"
    assert values["WACLUSTER_CLOUD_PHONE_NUMBER_ID"] == "106540352242922"
    assert values["WACLUSTER_CLOUD_API_VERSION"] == "v23.0"
    assert values["WACLUSTER_CLOUD_BASE_URL"] == "https://graph.facebook.com"
    assert values["WACLUSTER_CLOUD_MESSAGES_PER_SECOND"] == "80"
    tuned = {**CLOUD, "cloud": {**CLOUD["cloud"], "messagesPerSecond": 250, "apiVersion": "v24.0",
                                "baseUrl": "http://cloudapi.test:8088"}}
    env = _env(_containers(_index(owned_objects(_view(gateway=tuned), "1.0.0")))["wa-coreapp"])
    assert env["WACLUSTER_CLOUD_MESSAGES_PER_SECOND"]["value"] == "250"
    assert env["WACLUSTER_CLOUD_API_VERSION"]["value"] == "v24.0"
    assert env["WACLUSTER_CLOUD_BASE_URL"]["value"] == "http://cloudapi.test:8088"


def test_the_webapps_serve_metas_webhooks_on_the_path_the_spec_names():
    default = _env(_containers(_index(owned_objects(_view(gateway=CLOUD), "1.0.0")))["wa-webapp"])
    assert default["WACLUSTER_CLOUD_WEBHOOK_PATH"]["value"] == "/cloud/webhook"
    moved = {**CLOUD, "cloud": {**CLOUD["cloud"], "webhookPath": "/meta/whatsapp"}}
    env = _env(_containers(_index(owned_objects(_view(gateway=moved), "1.0.0")))["wa-webapp"])
    assert env["WACLUSTER_CLOUD_WEBHOOK_PATH"]["value"] == "/meta/whatsapp"
    for under_v1 in ("/v1/cloud", "/v1", "/"):
        with pytest.raises(ValueError, match="may not be / or lie under /v1/"):
            _view(gateway={**CLOUD, "cloud": {**CLOUD["cloud"], "webhookPath": under_v1}})


def test_cloud_credentials_reach_only_the_roles_that_use_them_and_only_by_reference():
    containers = _containers(_index(owned_objects(_view(gateway=CLOUD), "1.0.0")))
    refs = {name: {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]
                   if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "meta-cloud"}
            for name, container in containers.items()}
    assert refs["wa-coreapp"] == {"WACLUSTER_CLOUD_ACCESS_TOKEN": {"name": "meta-cloud", "key": "access-token"}}
    # The webapps register the number with the Cloud API (/v1/account/verify): they need the token.
    assert refs["wa-webapp"] == {"WACLUSTER_CLOUD_APP_SECRET": {"name": "meta-cloud", "key": "app-secret"},
                                 "WACLUSTER_CLOUD_VERIFY_TOKEN": {"name": "meta-cloud", "key": "verify-token"},
                                 "WACLUSTER_CLOUD_ACCESS_TOKEN": {"name": "meta-cloud", "key": "access-token"}}
    assert {name: r for name, r in refs.items() if name not in ("wa-coreapp", "wa-webapp")} == \
        {name: {} for name in containers if name not in ("wa-coreapp", "wa-webapp")}


def test_cloud_mode_tells_the_webapps_the_mode_and_the_graph_api_they_register_through():
    tuned = {**CLOUD, "cloud": {**CLOUD["cloud"], "apiVersion": "v24.0", "baseUrl": "http://cloudapi.test:8088"}}
    env = _env(_containers(_index(owned_objects(_view(gateway=tuned), "1.0.0")))["wa-webapp"])
    assert {name: env[name].get("value") for name in ("WACLUSTER_GATEWAY_MODE", "WACLUSTER_CLOUD_BASE_URL",
                                                      "WACLUSTER_CLOUD_API_VERSION")} == \
        {"WACLUSTER_GATEWAY_MODE": "cloud", "WACLUSTER_CLOUD_BASE_URL": "http://cloudapi.test:8088",
         "WACLUSTER_CLOUD_API_VERSION": "v24.0"}
    sandbox = _env(_containers(_index(owned_objects(_view(gateway={"mode": "sandbox"}), "1.0.0")))["wa-webapp"])
    assert not [name for name in sandbox if "CLOUD" in name or name == "WACLUSTER_GATEWAY_MODE"]


def test_sandbox_mode_leaves_the_coreapps_environment_as_before():
    # An operator upgrade must not roll the coreapps of every existing sandbox cluster.
    env = _env(_containers(_index(owned_objects(_view(gateway={"mode": "sandbox"}), "1.0.0")))["wa-coreapp"])
    assert not [name for name in env if "CLOUD" in name or name == "WACLUSTER_GATEWAY_MODE"]
    assert env["WACLUSTER_GATEWAY_URL"]["value"] == "http://wa-sandbox:6200"


@pytest.mark.parametrize("gateway,message", [
    ({"mode": "cloud"}, "gateway.cloud.phoneNumberId and gateway.cloud.credentialsSecret are required"),
    ({"mode": "cloud", "cloud": {"credentialsSecret": "meta-cloud"}}, "are required when gateway.mode is cloud"),
    ({"mode": "cloud", "cloud": {"phoneNumberId": "1065"}}, "are required when gateway.mode is cloud"),
    ({"mode": "sandbox", "cloud": CLOUD["cloud"]}, "gateway.cloud is set only when gateway.mode is cloud"),
    ({**CLOUD, "cloud": {**CLOUD["cloud"], "messagesPerSecond": 1001}}, "less than or equal to 1000"),
])
def test_an_incomplete_cloud_gateway_is_refused_by_the_models_too(gateway, message):
    with pytest.raises(ValueError) as err:
        WhatsAppClusterSpec.model_validate({"gateway": gateway})
    assert message in str(err.value)


def test_generated_secrets_cover_database_admin_webhook_signing_and_internal_unless_provided():
    names = {s["metadata"]["name"] for s in generated_secrets(_view(), lambda: "pw")}
    assert names == {"wa-db-credentials", "wa-admin", "wa-webhook-signing", "wa-internal"}
    provided = _view(api={"adminSecretName": "mine"})
    names = {s["metadata"]["name"] for s in generated_secrets(provided, lambda: "pw")}
    assert names == {"wa-db-credentials", "wa-webhook-signing", "wa-internal"}


def test_the_generated_api_certificate_names_the_service_and_is_its_own_ca():
    view = _view()
    certificate = self_signed_certificate(api_hosts(view), days=30)
    secret = api_tls_secret(view, certificate)
    assert secret["metadata"]["name"] == "wa-api-tls" and secret["type"] == "kubernetes.io/tls"
    assert secret["data"]["ca.crt"] == secret["data"]["tls.crt"]
    assert "wa-api.ns.svc" in api_hosts(view)
    parsed = x509.load_pem_x509_certificate(certificate.cert_pem)
    sans = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert set(api_hosts(view)) <= set(sans)
    assert (parsed.not_valid_after_utc - parsed.not_valid_before_utc).days == 30


def test_settings_config_map_carries_the_monitoring_spec():
    import json
    cm = _index(owned_objects(_view(monitoring={"heartbeatInterval": 1, "unhealthyInterval": 3}), "1.0.0"))[
        ("ConfigMap", "wa-settings")]
    settings = json.loads(cm["data"]["settings.json"])
    assert settings["heartbeat_interval"] == 1 and settings["unhealthy_interval"] == 3
