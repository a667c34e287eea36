"""End to end in gateway.mode cloud on real pods: the chart's operator runs a cluster whose coreapps
send through the local Cloud API (wacluster_testenv.cloudapi), itself a pod of the test namespace
behind a Service that the cluster's `gateway.cloud.baseUrl` names. The account is registered
through `/v1/account` (mapped to the Cloud API's register call), messages are sent, the owner
coreapp and the primary master are deleted, more messages are sent, and the Cloud API must have
accepted every message id exactly once.

Needs what test_e2e.py needs, and WACLUSTER_E2E_CLOUDAPI_IMAGE: the local Cloud API's image
(hack/images/cloudapi) already on the nodes, since nothing is pulled (`make e2e` builds and imports
wacluster-cloudapi:e2e). Without it the test is skipped with the reason.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid

import pytest

from test_e2e import IMAGE, ROOT, cluster_manifest, e2e_kubeconfig, kubectl, phase  # noqa: F401  (fixture)
from wacluster.api.v1alpha1 import CLOUD_ACCESS_TOKEN_KEY, CLOUD_APP_SECRET_KEY, CLOUD_VERIFY_TOKEN_KEY
from wacluster_testenv.apiclient import ApiClient
from wacluster_testenv.cloudapi import DEFAULT_DISPLAY_PHONE_NUMBER, DEFAULT_PHONE_NUMBER_ID
from wacluster_testenv.eventually import eventually

pytestmark = pytest.mark.e2e
CLOUDAPI_IMAGE = os.environ.get("WACLUSTER_E2E_CLOUDAPI_IMAGE", "")

CLUSTER = "whatsapp-cloud"
CLOUDAPI = "cloudapi"  # the local Cloud API's Deployment and Service
CLOUDAPI_PORT = 8088
CREDENTIALS = "whatsapp-cloud"
# The environment variables the local Cloud API reads its token and app secret from (its
# --token-env and --app-secret-env), filled from the same Secret the cluster uses.
TOKEN_ENV, APP_SECRET_ENV = "CLOUDAPI_ACCESS_TOKEN", "CLOUDAPI_APP_SECRET"
# The number the local Cloud API serves, as `/v1/account` asks for it (country code, then the rest).
CC, NUMBER = DEFAULT_DISPLAY_PHONE_NUMBER[:1], DEFAULT_DISPLAY_PHONE_NUMBER[1:]
PIN = "246810"  # the first register sets the number's two-step PIN
# Meta's default throughput, on both sides: the pacer never meets the Cloud API's 130429.
MESSAGES_PER_SECOND = 80


@pytest.fixture(scope="module")
def cloudapi_image() -> str:
    if not CLOUDAPI_IMAGE:
        pytest.skip("WACLUSTER_E2E_CLOUDAPI_IMAGE is not set: it names the local Cloud API's image on the nodes "
                    "(`make e2e` builds and imports wacluster-cloudapi:e2e)")
    return CLOUDAPI_IMAGE


def credentials_manifest(token: str, app_secret: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": CREDENTIALS},
            "stringData": {CLOUD_ACCESS_TOKEN_KEY: token, CLOUD_APP_SECRET_KEY: app_secret,
                           CLOUD_VERIFY_TOKEN_KEY: uuid.uuid4().hex}}


def cloudapi_manifests(image: str) -> list[dict]:
    """The local Cloud API: a Deployment accepting the Secret's token, and its Service."""
    labels = {"app.kubernetes.io/name": CLOUDAPI}
    container = {
        "name": CLOUDAPI, "image": image, "imagePullPolicy": "Never",
        "args": ["--host", "0.0.0.0", "--port", str(CLOUDAPI_PORT), "--phone-number-id", DEFAULT_PHONE_NUMBER_ID,
                 "--messages-per-second", str(MESSAGES_PER_SECOND),
                 "--token-env", TOKEN_ENV, "--app-secret-env", APP_SECRET_ENV],
        "env": [{"name": name, "valueFrom": {"secretKeyRef": {"name": CREDENTIALS, "key": key}}}
                for name, key in ((TOKEN_ENV, CLOUD_ACCESS_TOKEN_KEY), (APP_SECRET_ENV, CLOUD_APP_SECRET_KEY))],
        "ports": [{"name": "http", "containerPort": CLOUDAPI_PORT}],
        "readinessProbe": {"tcpSocket": {"port": CLOUDAPI_PORT}, "periodSeconds": 1},
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
    }
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": CLOUDAPI, "labels": labels},
                  "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                           "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": CLOUDAPI, "labels": labels},
               "spec": {"selector": labels, "ports": [{"name": "http", "port": CLOUDAPI_PORT,
                                                       "targetPort": CLOUDAPI_PORT}]}}
    return [deployment, service]


def cloud_cluster_manifest(ns: str, tag: str) -> dict:
    """test_e2e's cluster (the e2e image, the local PostgreSQL image) in gateway.mode cloud."""
    manifest = json.loads(cluster_manifest(CLUSTER, tag, "Delete"))
    manifest["spec"]["gateway"] = {"mode": "cloud", "cloud": {
        "phoneNumberId": DEFAULT_PHONE_NUMBER_ID, "credentialsSecret": CREDENTIALS,
        "baseUrl": f"http://{CLOUDAPI}.{ns}.svc:{CLOUDAPI_PORT}", "messagesPerSecond": MESSAGES_PER_SECOND}}
    return manifest


def accepted_sends(k, ns: str) -> dict:
    """The local Cloud API's record: `counts` of accepted sends per biz_opaque_callback_data (our
    message id) and `duplicates`, read from its control endpoint inside its own pod."""
    return json.loads(k("exec", "-n", ns, f"deploy/{CLOUDAPI}", "--", "python3", "-c",
                        "import urllib.request;print(urllib.request.urlopen("
                        f"'http://127.0.0.1:{CLOUDAPI_PORT}/_control/sends').read().decode())"))


def connected_coreapps(api: ApiClient) -> list[str]:
    return [key.split(":")[0] for key, v in api.health().items()
            if v.get("role") == "coreapp" and v.get("gateway_status") == "connected"]


def test_cloud_mode_sends_fail_over_and_every_id_reaches_the_cloud_api_once(e2e_kubeconfig, cloudapi_image):
    ns = f"e2e-cloud-{uuid.uuid4().hex[:6]}"
    k = lambda *a, **kw: kubectl(e2e_kubeconfig, *a, **kw)  # noqa: E731
    apply = lambda *objects: subprocess.run(  # noqa: E731
        ["kubectl", f"--kubeconfig={e2e_kubeconfig}", "apply", "-n", ns, "-f", "-"],
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}), text=True, check=True)
    repository, tag = IMAGE.rsplit(":", 1)
    subprocess.run(["helm", "install", "wa", str(ROOT / "charts" / "wacluster"), "-n", ns, "--create-namespace",
                    "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
                    "--set", "image.pullPolicy=Never", "--set", f"defaultClusterVersion={tag}",
                    f"--kubeconfig={e2e_kubeconfig}", "--wait", "--timeout=5m"], check=True)
    port_forward = None
    try:
        apply(credentials_manifest(f"EAAG-e2e-{uuid.uuid4().hex}", uuid.uuid4().hex),
              *cloudapi_manifests(cloudapi_image))
        eventually(lambda: json.loads(k("get", "deploy", CLOUDAPI, "-n", ns, "-o", "json"))
                   .get("status", {}).get("readyReplicas") == 1, 180, interval=1, what="the local Cloud API pod ready",
                   details=lambda: k("describe", "pods", "-n", ns, "-l", f"app.kubernetes.io/name={CLOUDAPI}"))
        apply(cloud_cluster_manifest(ns, tag))
        eventually(lambda: phase(k, ns, CLUSTER) == "Ready", 600, interval=1, what="cloud-mode cluster Ready",
                   details=lambda: k("get", "pods", "-n", ns, "-o", "wide"))

        port_forward = subprocess.Popen(["kubectl", f"--kubeconfig={e2e_kubeconfig}", "port-forward", "-n", ns,
                                         f"svc/{CLUSTER}-api", "19091:9090"], stdout=subprocess.DEVNULL)
        secret = json.loads(k("get", "secret", f"{CLUSTER}-admin", "-n", ns, "-o", "json"))["data"]
        api = ApiClient("https://127.0.0.1:19091")
        login = eventually(lambda: api.login(base64.b64decode(secret["username"]).decode(),
                                             base64.b64decode(secret["password"]).decode()),
                           60, interval=1, ignore=(OSError,), what="the API answering through the port-forward")
        assert login.status == 200, login.body

        # Cloud registration: /v1/account finds the number at the Cloud API (202, pending), and the
        # verify code is the PIN of the Cloud API's register call.
        pending = api.request("POST", "/v1/account", {"cc": CC, "phone_number": NUMBER, "method": "sms"})
        assert pending.status == 202, pending.body
        registered = api.request("POST", "/v1/account/verify", {"code": PIN})
        assert registered.status == 201, registered.body
        eventually(lambda: connected_coreapps(api), 120, interval=1, what="a coreapp connected to the Cloud API",
                   details=lambda: str(api.health()))

        ids = []
        for i in range(20):
            reply = api.send_text(f"+1555700{i:04d}", f"cloud e2e {i}")
            assert reply.status == 201, reply.body
            ids.append(reply.body["messages"][0]["id"])

        primary = json.loads(k("get", "wac", CLUSTER, "-n", ns, "-o", "json"))["status"]["primaryMaster"]
        owner = connected_coreapps(api)[0]
        k("delete", "pod", owner, "-n", ns, "--wait=false")
        k("delete", "pod", primary, "-n", ns, "--wait=false")
        eventually(lambda: [name for name in connected_coreapps(api) if name != owner], 180, interval=1,
                   what="another coreapp connected after the owner's pod was deleted",
                   details=lambda: str(api.health()))

        for i in range(20):
            # A 503 says the new owner is not known yet everywhere: a client retries it.
            sent = api.send_until_accepted(f"+1555701{i:04d}", f"cloud e2e after failover {i}", deadline=60)
            assert sent is not None, f"message {i} after the failover was never accepted"
            ids.append(sent)

        def all_accepted() -> dict | None:
            record = accepted_sends(k, ns)
            return record if set(ids) <= set(record["counts"]) else None

        record = eventually(all_accepted, 180, interval=1, what="every message id accepted by the Cloud API",
                            details=lambda: f"missing: {sorted(set(ids) - set(accepted_sends(k, ns)['counts']))}")
        assert len(set(ids)) == len(ids) == 40
        assert record["counts"] == {i: 1 for i in ids}, f"duplicates: {record['duplicates']}"
    finally:
        if port_forward is not None:
            port_forward.terminate()
            port_forward.wait(10)
        k("delete", "wac", CLUSTER, "-n", ns, "--ignore-not-found", "--timeout=300s", check=False)
        subprocess.run(["helm", "uninstall", "wa", "-n", ns, f"--kubeconfig={e2e_kubeconfig}", "--wait"])
        k("delete", "namespace", ns, "--wait=false", check=False)
