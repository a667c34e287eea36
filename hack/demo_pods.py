"""`make demo` on real pods: the same story as the process demo, with every role in a container.

Used by hack/demo.py when this machine can run a real node (root, the host packages of
hack/host-setup.sh, a Docker engine answering). The operator is installed with the Helm chart,
examples/minimal.yaml is applied with the locally built images, and the seed story (register,
send, lose the connected coreapp, send again) runs against the pods through a port-forward.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time

import yaml

from wacluster.runtime.sandbox import registration_code
from wacluster.testenv.apiclient import ApiClient
from wacluster.testenv.build import bin_dir
from wacluster.testenv.environment import Environment
from wacluster.testenv.images import build_images, import_into_containerd
from wacluster.testenv.localcluster import wait_until
from wacluster.testenv.processes import free_port
from wacluster.testenv.node import host_problems

TAG = "demo"
POSTGRES_IMAGE = "wacluster-postgres:15"


def available() -> bool:
    if host_problems() or not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def run(root, say, kubectl_factory, show_health, namespace: str, keep: bool) -> int:
    env = Environment("demo")
    if env.summary():
        say("stopping a previous demo environment")
        env.down()
    say("starting the local control plane and one real node (containerd, kubelet, kube-proxy, CoreDNS)")
    summary = env.up(with_postgres=False, nodes="real")
    say(f"ready in {summary['ready_in_s']}s: {summary['server']}")
    kubectl = kubectl_factory(summary["kubeconfig"])
    try:
        print(kubectl("get", "nodes", "-o", "wide"), flush=True)
        say("building the images from Debian packages and the Dockerfile (cached after the first run)")
        built = build_images(tag=TAG, progress=lambda m: say(m))
        import_into_containerd([built["project"], built["postgres"]], str(env.control_plane.node.socket),
                               progress=lambda m: say(m))
        say("installing the operator with the Helm chart (namespace demo)")
        subprocess.run([str(bin_dir() / "helm"), "install", "wa", str(root / "charts" / "wacluster"),
                        "-n", namespace, "--create-namespace", f"--kubeconfig={summary['kubeconfig']}",
                        "--set", "image.repository=wacluster", "--set", f"image.tag={TAG}",
                        "--set", "image.pullPolicy=Never", "--set", f"defaultClusterVersion={TAG}",
                        "--wait", "--timeout=5m"], check=True, capture_output=True)
        say("applying examples/minimal.yaml (local images, 1 s heartbeats, 3 s unhealthy)")
        manifest = yaml.safe_load((root / "examples" / "minimal.yaml").read_text())
        manifest["spec"].update({
            "version": TAG, "image": {"repository": "wacluster", "pullPolicy": "Never"},
            "database": {"mode": "embedded", "embedded": {"image": POSTGRES_IMAGE, "storageSize": "1Gi"}},
            "monitoring": {"heartbeatInterval": 1, "unhealthyInterval": 3},
        })
        print(kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest)), flush=True)
        wait_until(lambda: (json.loads(kubectl("get", "wac", "whatsapp", "-n", namespace, "-o", "json"))
                            .get("status", {}).get("phase") == "Ready"), 600, interval=2.0,
                   what="the WhatsAppCluster to become Ready")
        say("the cluster is Ready")
        print(kubectl("get", "wac", "-n", namespace), flush=True)
        print(kubectl("get", "pods", "-n", namespace, "-o", "wide"), flush=True)
        story(kubectl, summary["kubeconfig"], namespace, say, show_health)
        return 0
    finally:
        if keep:
            say(f"environment kept: source {env.directory / 'env.sh'}; stop it with `wacluster testenv down --name demo`")
        else:
            say("stopping the environment")
            env.down()


def story(kubectl, kubeconfig: str, namespace: str, say, show_health) -> None:
    port = free_port()
    forward = subprocess.Popen([str(bin_dir() / "kubectl"), f"--kubeconfig={kubeconfig}", "port-forward",
                                "-n", namespace, "svc/whatsapp-api", f"{port}:9090"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        api = ApiClient(f"https://127.0.0.1:{port}")
        secret = json.loads(kubectl("get", "secret", "whatsapp-admin", "-n", namespace, "-o", "json"))["data"]
        user, password = (base64.b64decode(secret[k]).decode() for k in ("username", "password"))
        wait_until(lambda: _answers(api, user, password), 60, what="the API through the port-forward")
        everyone = lambda: len(h := api.health()) == 4 and not any("errors" in v for v in h.values())  # noqa: E731
        wait_until(everyone, 60, what="every master and coreapp reporting")
        show_health(api, "before registration")
        say("registering the account (POST /v1/account, then /v1/account/verify with the sandbox's code)")
        api.request("POST", "/v1/account", {"cc": "1", "phone_number": "5550001111"})
        api.request("POST", "/v1/account/verify", {"code": registration_code("+15550001111")})
        connected = lambda: [k for k, v in api.health().items()  # noqa: E731
                             if v.get("role") == "coreapp" and v.get("gateway_status") == "connected"]
        wait_until(connected, 60, what="a connected coreapp")
        show_health(api, "registered: one coreapp connected, the other a standby")
        reply = api.send_text("+15551234567", "Hello from wacluster")
        say(f"POST /v1/messages -> {reply.status} {json.dumps(reply.body)}")
        owner = connected()[0].split(":")[0]
        say(f"deleting the connected coreapp's pod {owner} at once (grace period 0: an unplanned failure)")
        kubectl("delete", "pod", owner, "-n", namespace, "--grace-period=0", "--force", "--wait=false")
        started = time.monotonic()
        wait_until(lambda: [k for k in connected() if not k.startswith(owner)], 60, what="the standby connected")
        say(f"the standby took over shard 0 in {time.monotonic() - started:.1f}s")
        show_health(api, "after the failover")
        reply = api.send_text("+15551234567", "Still here after the failover")
        say(f"POST /v1/messages -> {reply.status} {json.dumps(reply.body)}")
        time.sleep(1)
        report = json.loads(kubectl("exec", "-n", namespace, "deploy/whatsapp-sandbox", "--", "python", "-c",
                                    "import urllib.request;print(urllib.request.urlopen("
                                    "'http://127.0.0.1:6200/inspect/deliveries').read().decode())"))
        say(f"sandbox: {len(report['deliveries'])} delivered, {len(report['conflicts'])} conflicts, "
            f"{len(report['bans'])} bans")
    finally:
        forward.terminate()


def _answers(api: ApiClient, user: str, password: str) -> bool:
    try:
        return api.login(user, password).status == 200
    except OSError:
        return False
