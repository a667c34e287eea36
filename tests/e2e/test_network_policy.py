"""The operator's NetworkPolicies on real pods: a pod outside the cluster reaches neither a
coreapp's control port nor the database, the cluster's own roles still deliver messages, and
with `spec.networkPolicy.enabled: false` the same pod connects (so the test can fail).

Policies are enforced by the cluster's network plugin, not by the operator: the test runs only
where WACLUSTER_E2E_NETWORK_POLICY=enforced says the nodes enforce them, and otherwise skips with
the reason (on the local real node, wacluster_testenv.network_policy says why it does not).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid

import pytest

from test_e2e import IMAGE, ROOT, cluster_manifest, e2e_kubeconfig, kubectl, phase  # noqa: F401  (fixture)
from wacluster.api.interprocess import Label, Port, Role
from wacluster.resources.database import DATABASE_COMPONENT
from wacluster.runtime.sandbox import registration_code
from wacluster_testenv.apiclient import ApiClient
from wacluster_testenv.eventually import eventually
from wacluster_testenv.network_policy import why_not_enforced

ENFORCED = os.environ.get("WACLUSTER_E2E_NETWORK_POLICY") == "enforced"
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not ENFORCED, reason=(
        "NetworkPolicies are not enforced here, so blocked traffic cannot be shown: "
        f"{why_not_enforced()}. Set WACLUSTER_E2E_NETWORK_POLICY=enforced on a cluster whose "
        "network plugin enforces them")),
]

CLUSTER = "guarded"
# Connects to each host:port given and prints one JSON object: target -> true when it connected.
PROBE = ("import json, socket, sys\n"
         "out = {}\n"
         "for target in sys.argv[1:]:\n"
         "    host, port = target.rsplit(':', 1)\n"
         "    try:\n"
         "        socket.create_connection((host, int(port)), timeout=3).close()\n"
         "        out[target] = True\n"
         "    except OSError:\n"
         "        out[target] = False\n"
         "print(json.dumps(out))\n")


def pod_ip(k, ns: str, component: str) -> str:
    selector = f"{Label.CLUSTER}={CLUSTER},{Label.COMPONENT}={component}"
    ips = k("get", "pods", "-n", ns, "-l", selector, "--field-selector=status.phase=Running",
            "-o", "jsonpath={.items[*].status.podIP}").split()
    assert ips, f"no running {component} pod with an address"
    return ips[0]


def probe_pod_manifest(name: str) -> str:
    """A plain pod with no label of the cluster: the e2e image idling, to connect from."""
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                                "containers": [{"name": "probe", "image": IMAGE, "imagePullPolicy": "Never",
                                                "command": ["python", "-c", "import time; time.sleep(1800)"]}]}})


def reachable(k, ns: str, pod: str, targets: list[str]) -> dict[str, bool]:
    return json.loads(k("exec", "-n", ns, pod, "--", "python", "-c", PROBE, *targets))


def send_and_deliver(e2e_kubeconfig: str, k, ns: str) -> None:
    """Register the account, send messages and see each delivered once by the sandbox gateway:
    webapp -> coreapp control port, master -> coreapp heartbeats, roles -> database, coreapp ->
    sandbox all pass the policies."""
    port_forward = subprocess.Popen(["kubectl", f"--kubeconfig={e2e_kubeconfig}", "port-forward", "-n", ns,
                                     f"svc/{CLUSTER}-api", "19091:9090"], stdout=subprocess.DEVNULL)
    try:
        secret = json.loads(k("get", "secret", f"{CLUSTER}-admin", "-n", ns, "-o", "json"))["data"]
        api = ApiClient("https://127.0.0.1:19091")
        login = eventually(lambda: api.login(base64.b64decode(secret["username"]).decode(),
                                             base64.b64decode(secret["password"]).decode()),
                           60, interval=1, ignore=(OSError,), what="the API answering through the port-forward")
        assert login.status == 200
        api.request("POST", "/v1/account", {"cc": "1", "phone_number": "5550002222"})
        assert api.request("POST", "/v1/account/verify", {"code": registration_code("+15550002222")}).status == 201
        eventually(lambda: any(v.get("gateway_status") == "connected" and v.get("role") == Role.COREAPP
                               for v in api.health().values()), 120, interval=1, what="a connected coreapp")
        ids = [api.send_text(f"+1555702{i:04d}", "behind policies").body["messages"][0]["id"] for i in range(5)]
    finally:
        port_forward.terminate()

    def delivered() -> list[str]:
        found = json.loads(k("exec", "-n", ns, f"deploy/{CLUSTER}-sandbox", "--", "python", "-c",
                             "import urllib.request;print(urllib.request.urlopen("
                             "'http://127.0.0.1:6200/inspect/deliveries').read().decode())"))
        return [d["id"] for d in found["deliveries"]]
    eventually(lambda: set(ids) <= set(delivered()), 120, interval=1,
               what="the messages delivered by the sandbox gateway")
    got = delivered()
    assert len(got) == len(set(got)), "a message was delivered twice"


def test_pod_outside_the_cluster_reaches_neither_coreapp_nor_database_until_policies_are_off(e2e_kubeconfig):
    ns = f"e2e-np-{uuid.uuid4().hex[:6]}"
    outside = f"{ns}-outside"
    k = lambda *a, **kw: kubectl(e2e_kubeconfig, *a, **kw)  # noqa: E731
    apply = lambda manifest, namespace: subprocess.run(  # noqa: E731
        ["kubectl", f"--kubeconfig={e2e_kubeconfig}", "apply", "-n", namespace, "-f", "-"],
        input=manifest, text=True, check=True)
    repository, tag = IMAGE.rsplit(":", 1)
    subprocess.run(["helm", "install", "wa-np", str(ROOT / "charts" / "wacluster"), "-n", ns, "--create-namespace",
                    "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
                    "--set", "image.pullPolicy=Never", "--set", f"defaultClusterVersion={tag}",
                    f"--kubeconfig={e2e_kubeconfig}", "--wait", "--timeout=5m"], check=True)
    try:
        k("create", "namespace", outside)
        apply(probe_pod_manifest("probe"), outside)
        apply(cluster_manifest(CLUSTER, tag, "Delete"), ns)  # networkPolicy is on by default
        eventually(lambda: phase(k, ns, CLUSTER) == "Ready", 600, interval=1, what="cluster Ready")
        k("wait", "-n", outside, "pod/probe", "--for=condition=Ready", "--timeout=120s")
        policies = k("get", "networkpolicies", "-n", ns, "-o", "name").split()
        assert f"networkpolicy.networking.k8s.io/{CLUSTER}-{Role.COREAPP}" in policies, policies
        targets = [f"{pod_ip(k, ns, Role.COREAPP)}:{Port.CONTROL}", f"{pod_ip(k, ns, DATABASE_COMPONENT)}:{Port.DATABASE}"]

        eventually(lambda: not any(reachable(k, outside, "probe", targets).values()), 60, interval=2,
                   what=f"{targets} unreachable from a pod outside the cluster while its policies exist")
        send_and_deliver(e2e_kubeconfig, k, ns)
        assert not any(reachable(k, outside, "probe", targets).values()), "a policy stopped holding"

        k("patch", "wac", CLUSTER, "-n", ns, "--type=merge", "-p",
          json.dumps({"spec": {"networkPolicy": {"enabled": False}}}))
        eventually(lambda: not k("get", "networkpolicies", "-n", ns, "-o", "name").strip(), 120, interval=1,
                   what="the operator removing its NetworkPolicies")
        eventually(lambda: all(reachable(k, outside, "probe", targets).values()), 60, interval=2,
                   what=f"{targets} reachable from the same pod once the policies are gone")
    finally:
        k("delete", "wac", CLUSTER, "-n", ns, "--timeout=300s", check=False)
        subprocess.run(["helm", "uninstall", "wa-np", "-n", ns, f"--kubeconfig={e2e_kubeconfig}", "--wait"])
        k("delete", "namespace", ns, outside, "--wait=false", check=False)
