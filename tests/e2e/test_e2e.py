"""End to end on real pods: build the image, install the chart, run a cluster, fail it over.

Runs against WACLUSTER_KUBECONFIG (a cluster with real nodes that can run the image named by
WACLUSTER_E2E_IMAGE, e.g. `wacluster testenv up --nodes real` + `wacluster testenv images`, which
`make e2e` does), or, where Docker and kind are available, on a kind cluster created by
pytest-kind. Anywhere else it is skipped with the reason. WACLUSTER_E2E_POSTGRES_IMAGE picks the
embedded database's image (the local environment has no registry to pull postgres:16 from).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from wacluster.runtime.sandbox import registration_code
from wacluster_testenv.apiclient import ApiClient
from wacluster_testenv.eventually import eventually

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("WACLUSTER_E2E_IMAGE", "wacluster:e2e")
PLUGIN = str(Path(sys.executable).parent / "kubectl-wac")  # installed with the package
# The upgrade target: the same build under a second tag (a version change is a tag change).
NEXT_TAG = os.environ.get("WACLUSTER_E2E_NEXT_TAG", "e2e-next")
POSTGRES_IMAGE = os.environ.get("WACLUSTER_E2E_POSTGRES_IMAGE", "")


def _docker_usable() -> bool:
    if not shutil.which("docker") or not shutil.which("kind"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def e2e_kubeconfig(request) -> str:
    existing = os.environ.get("WACLUSTER_KUBECONFIG")
    if existing:
        nodes = subprocess.run(["kubectl", f"--kubeconfig={existing}", "get", "nodes", "-l", "type!=kwok", "-o", "name"],
                               capture_output=True, text=True)
        if not nodes.stdout.strip():
            pytest.skip("WACLUSTER_KUBECONFIG has no real (non-kwok) node to run pods on")
        return existing
    if not _docker_usable():
        pytest.skip("e2e needs real pods: no Docker engine with kind here and WACLUSTER_KUBECONFIG is not set "
                    "(the local control plane's kwok nodes run no containers)")
    subprocess.run(["docker", "build", "-t", IMAGE, str(ROOT)], check=True)
    next_image = f"{IMAGE.rsplit(':', 1)[0]}:{NEXT_TAG}"
    subprocess.run(["docker", "tag", IMAGE, next_image], check=True)
    kind_cluster = request.getfixturevalue("kind_cluster")
    kind_cluster.load_docker_image(IMAGE)
    kind_cluster.load_docker_image(next_image)
    return str(kind_cluster.kubeconfig_path)


def kubectl(kubeconfig: str, *args: str, check: bool = True) -> str:
    result = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
    return result.stdout


def cluster_manifest(name: str, tag: str, deletion_policy: str) -> str:
    spec: dict = {"version": tag, "deletionPolicy": deletion_policy,
                  "image": {"repository": IMAGE.rsplit(":", 1)[0], "pullPolicy": "Never"}}
    if POSTGRES_IMAGE:
        spec["database"] = {"mode": "embedded", "embedded": {"image": POSTGRES_IMAGE, "storageSize": "1Gi"}}
    return json.dumps({"apiVersion": "wacluster.io/v1alpha1", "kind": "WhatsAppCluster",
                       "metadata": {"name": name}, "spec": spec})


def phase(k, ns: str, name: str) -> str | None:
    found = k("get", "wac", name, "-n", ns, "-o", "json", "--ignore-not-found")
    return json.loads(found).get("status", {}).get("phase") if found.strip() else None


def exists(k, ns: str, kind: str, name: str) -> bool:
    return bool(k("get", kind, name, "-n", ns, "--ignore-not-found", "-o", "name").strip())


def test_install_run_fail_over_upgrade_and_uninstall(e2e_kubeconfig):
    ns = f"e2e-{uuid.uuid4().hex[:6]}"
    k = lambda *a, **kw: kubectl(e2e_kubeconfig, *a, **kw)  # noqa: E731
    apply = lambda manifest: subprocess.run(  # noqa: E731
        ["kubectl", f"--kubeconfig={e2e_kubeconfig}", "apply", "-n", ns, "-f", "-"],
        input=manifest, text=True, check=True)
    repository, tag = IMAGE.rsplit(":", 1)
    subprocess.run(["helm", "install", "wa", str(ROOT / "charts" / "wacluster"), "-n", ns, "--create-namespace",
                    "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
                    "--set", "image.pullPolicy=Never", "--set", f"defaultClusterVersion={tag}",
                    f"--kubeconfig={e2e_kubeconfig}", "--wait", "--timeout=5m"], check=True)
    # Retain (the default) first: deleting the cluster keeps its volumes and database credentials.
    apply(cluster_manifest("whatsapp", tag, "Retain"))
    eventually(lambda: phase(k, ns, "whatsapp") == "Ready", 600, interval=1, what="cluster Ready")

    port_forward = subprocess.Popen(["kubectl", f"--kubeconfig={e2e_kubeconfig}", "port-forward", "-n", ns,
                                     "svc/whatsapp-api", "19090:9090"], stdout=subprocess.DEVNULL)
    try:
        secret = json.loads(k("get", "secret", "whatsapp-admin", "-n", ns, "-o", "json"))["data"]
        api = ApiClient("https://127.0.0.1:19090")
        login = eventually(lambda: api.login(base64.b64decode(secret["username"]).decode(),
                                             base64.b64decode(secret["password"]).decode()),
                           60, interval=1, ignore=(OSError,), what="the API answering through the port-forward")
        assert login.status == 200
        api.request("POST", "/v1/account", {"cc": "1", "phone_number": "5550001111"})
        assert api.request("POST", "/v1/account/verify", {"code": registration_code("+15550001111")}).status == 201
        eventually(lambda: any(v.get("gateway_status") == "connected" and v.get("role") == "coreapp"
                               for v in api.health().values()), 120, interval=1, what="a connected coreapp")
        ids = [api.send_text(f"+1555700{i:04d}", "e2e").body["messages"][0]["id"] for i in range(20)]

        primary = json.loads(k("get", "wac", "whatsapp", "-n", ns, "-o", "json"))["status"]["primaryMaster"]
        owner = [key.split(":")[0] for key, v in api.health().items()
                 if v.get("role") == "coreapp" and v.get("gateway_status") == "connected"][0]
        k("delete", "pod", owner, "-n", ns, "--wait=false")
        k("delete", "pod", primary, "-n", ns, "--wait=false")
        eventually(lambda: any(v.get("gateway_status") == "connected" and v.get("role") == "coreapp"
                               and not key.startswith(owner) for key, v in api.health().items()), 180,
                   interval=1, what="failover")
        ids += [api.send_text(f"+1555701{i:04d}", "after").body["messages"][0]["id"] for i in range(20)]
        delivered = json.loads(k("exec", "-n", ns, "deploy/whatsapp-sandbox", "--", "python", "-c",
                                 "import urllib.request;print(urllib.request.urlopen("
                                 "'http://127.0.0.1:6200/inspect/deliveries').read().decode())"))
        got = [d["id"] for d in delivered["deliveries"]]
        assert set(ids) <= set(got) and len(got) == len(set(got))
        assert delivered["conflicts"] == [] and delivered["bans"] == []

        # kubectl wac on real pods: the masters read the switchover annotation under the runtime
        # ServiceAccount's Role, the owner hands off without exiting, nothing is lost.
        wac = lambda *a: subprocess.run([PLUGIN, "-n", ns, *a], capture_output=True, text=True,  # noqa: E731
                                        env={**os.environ, "KUBECONFIG": e2e_kubeconfig}, timeout=240)
        shown = wac("status", "whatsapp")
        assert shown.returncode == 0 and "Primary master: whatsapp-master-" in shown.stdout, shown.stdout + shown.stderr
        before = [key.split(":")[0] for key, v in api.health().items()
                  if v.get("role") == "coreapp" and v.get("gateway_status") == "connected"][0]
        # The replaced coreapp must be standing by first; until then the switchover is refused.
        moved = eventually(lambda: (r := wac("switchover", "whatsapp", "--shard", "0", "--timeout", "60"))
                           .returncode == 0 and r, 240, interval=5, what="a completed switchover")
        assert "Completed: shard 0 is served by" in moved.stdout and before not in moved.stdout.splitlines()[-1]
        ids += [api.send_text(f"+1555702{i:04d}", "switched").body["messages"][0]["id"] for i in range(10)]
        eventually(lambda: set(ids) <= {d["id"] for d in json.loads(k(
            "exec", "-n", ns, "deploy/whatsapp-sandbox", "--", "python", "-c",
            "import urllib.request;print(urllib.request.urlopen("
            "'http://127.0.0.1:6200/inspect/deliveries').read().decode())"))["deliveries"]}, 60, interval=1,
                   what="every message delivered after the switchover")
        logs = wac("logs", "whatsapp", "--role", "master", "--tail", "50")
        assert logs.returncode == 0 and "[whatsapp-master-" in logs.stdout and "switchover" in logs.stdout
    finally:
        port_forward.terminate()

    k("patch", "wac", "whatsapp", "-n", ns, "--type=merge", "-p", json.dumps({"spec": {"version": NEXT_TAG}}))
    eventually(lambda: json.loads(k("get", "wac", "whatsapp", "-n", ns, "-o", "json")).get("status", {})
               .get("version") == NEXT_TAG, 600, interval=1, what="upgrade finished")
    job = json.loads(k("get", "job", f"whatsapp-dbupgrade-{NEXT_TAG}", "-n", ns, "-o", "json"))
    assert job["status"].get("succeeded") == 1
    eventually(lambda: phase(k, ns, "whatsapp") == "Ready", 600, interval=1, what="Ready on the new version")

    # A typo in the spec (requests above limits) is refused by `kubectl` itself, and the running
    # pods are left as they are (it once deleted the coreapp Deployment).
    coreapp_pods = k("get", "pods", "-n", ns, "-l", "app.kubernetes.io/component=coreapp", "-o",
                     "jsonpath={.items[*].metadata.uid}")
    typo = subprocess.run(["kubectl", f"--kubeconfig={e2e_kubeconfig}", "patch", "wac", "whatsapp", "-n", ns,
                           "--type=merge", "-p", json.dumps({"spec": {"coreapps": {"resources": {
                               "requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}}})],
                          capture_output=True, text=True)
    assert typo.returncode != 0 and "must not exceed" in typo.stderr, typo.stderr
    assert k("get", "pods", "-n", ns, "-l", "app.kubernetes.io/component=coreapp", "-o",
             "jsonpath={.items[*].metadata.uid}") == coreapp_pods
    assert phase(k, ns, "whatsapp") == "Ready"

    k("delete", "wac", "whatsapp", "-n", ns, "--timeout=300s")
    kept = [("pvc", "data-whatsapp-db-0"), ("pvc", "whatsapp-media"), ("secret", "whatsapp-db-credentials")]
    assert all(exists(k, ns, kind, name) for kind, name in kept), "Retain must keep volumes and credentials"

    # Delete: the same cluster comes back on the retained data, then goes with everything.
    apply(cluster_manifest("whatsapp", NEXT_TAG, "Delete"))
    eventually(lambda: phase(k, ns, "whatsapp") == "Ready", 600, interval=1,
               what="cluster Ready again on the retained data")
    k("delete", "wac", "whatsapp", "-n", ns, "--timeout=300s")
    eventually(lambda: not any(exists(k, ns, kind, name) for kind, name in kept), 120,
               interval=1, what="volumes and credentials deleted")
    subprocess.run(["helm", "uninstall", "wa", "-n", ns, f"--kubeconfig={e2e_kubeconfig}", "--wait"], check=True)
    assert not k("get", "deployments,statefulsets", "-n", ns, "-o", "name").strip(), "uninstall left workloads"
    k("delete", "namespace", ns, "--wait=false")
