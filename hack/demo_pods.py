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

import yaml
from demo_story import seed_story

from wacluster.api.interprocess import Port
from wacluster_testenv.apiclient import ApiClient
from wacluster_testenv.build import bin_dir
from wacluster_testenv.environment import Environment
from wacluster_testenv.images import build_images, import_into_containerd
from wacluster_testenv.eventually import eventually
from wacluster_testenv.processes import free_port
from wacluster_testenv.node import host_problems

TAG = "demo"
POSTGRES_IMAGE = "wacluster-postgres:15"


def available() -> bool:
    if host_problems() or not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def run(root, say, kubectl_factory, namespace: str, keep: bool) -> int:
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
        eventually(lambda: (json.loads(kubectl("get", "wac", "whatsapp", "-n", namespace, "-o", "json"))
                            .get("status", {}).get("phase") == "Ready"), 600, interval=2.0,
                   what="the WhatsAppCluster to become Ready")
        say("the cluster is Ready")
        print(kubectl("get", "wac", "-n", namespace), flush=True)
        print(kubectl("get", "pods", "-n", namespace, "-o", "wide"), flush=True)
        story(kubectl, summary["kubeconfig"], namespace, say)
        return 0
    finally:
        if keep:
            say(f"environment kept: source {env.directory / 'env.sh'}; stop it with `wacluster testenv down --name demo`")
        else:
            say("stopping the environment")
            env.down()


def story(kubectl, kubeconfig: str, namespace: str, say) -> None:
    port = free_port()
    forward = subprocess.Popen([str(bin_dir() / "kubectl"), f"--kubeconfig={kubeconfig}", "port-forward",
                                "-n", namespace, "svc/whatsapp-api", f"{port}:9090"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        api = ApiClient(f"https://127.0.0.1:{port}")
        secret = json.loads(kubectl("get", "secret", "whatsapp-admin", "-n", namespace, "-o", "json"))["data"]
        user, password = (base64.b64decode(secret[k]).decode() for k in ("username", "password"))
        eventually(lambda: _answers(api, user, password), 60, what="the API through the port-forward")

        def fail(owner: str) -> None:
            say(f"deleting the connected coreapp's pod {owner} at once (grace period 0: an unplanned failure)")
            kubectl("delete", "pod", owner, "-n", namespace, "--grace-period=0", "--force", "--wait=false")

        def sandbox_counts() -> tuple[int, int, int]:
            report = json.loads(kubectl("exec", "-n", namespace, "deploy/whatsapp-sandbox", "--", "python", "-c",
                                        "import urllib.request;print(urllib.request.urlopen("
                                        f"'http://127.0.0.1:{Port.GATEWAY}/inspect/deliveries').read().decode())"))
            return len(report["deliveries"]), len(report["conflicts"]), len(report["bans"])

        seed_story(api, say, fail, sandbox_counts, timeout=120)  # a cold first run is slower
    finally:
        forward.terminate()


def _answers(api: ApiClient, user: str, password: str) -> bool:
    try:
        return api.login(user, password).status == 200
    except OSError:
        return False
